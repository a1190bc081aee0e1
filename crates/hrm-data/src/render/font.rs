//! The embedded 5x7 bitmap font (ASCII 32-126) used by [`super::Canvas::draw_text`].
//!
//! No reference counterpart (the reference draws with matplotlib and an HTML visualiser). The
//! glyphs live in `font5x7.txt`, one readable block per character, parsed once.

use std::sync::OnceLock;

/// Glyph width in pixels.
pub const GLYPH_WIDTH: usize = 5;
/// Glyph height in pixels.
pub const GLYPH_HEIGHT: usize = 7;
/// Horizontal advance per character, spacing included.
pub const ADVANCE: usize = GLYPH_WIDTH + 1;
/// Vertical advance per line, spacing included.
pub const LINE_HEIGHT: usize = GLYPH_HEIGHT + 2;

/// Rows of each glyph as 5-bit masks (bit 4 = leftmost pixel), indexed by `code - 32`.
fn glyphs() -> &'static [[u8; GLYPH_HEIGHT]; 95] {
    static GLYPHS: OnceLock<[[u8; GLYPH_HEIGHT]; 95]> = OnceLock::new();
    GLYPHS.get_or_init(|| {
        let mut out = [[0u8; GLYPH_HEIGHT]; 95];
        let mut lines = include_str!("font5x7.txt")
            .lines()
            .filter(|l| !l.starts_with(';'));
        while let Some(code) = lines.next() {
            let code: usize = code.trim().parse().expect("font5x7.txt: a code point line");
            for row in out[code - 32].iter_mut() {
                let bits = lines.next().expect("font5x7.txt: 7 rows per glyph");
                *row = bits
                    .bytes()
                    .fold(0, |acc, b| (acc << 1) | u8::from(b == b'#'));
            }
        }
        out
    })
}

/// The glyph rows of `c`; characters outside ASCII 32-126 draw as `?`.
pub fn glyph(c: char) -> [u8; GLYPH_HEIGHT] {
    let code = c as u32;
    let index = if (32..=126).contains(&code) {
        code - 32
    } else {
        u32::from(b'?') - 32
    };
    glyphs()[index as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printable_character_has_a_glyph() {
        assert_eq!(glyph(' '), [0; 7]);
        for code in 33u8..=126 {
            assert_ne!(
                glyph(char::from(code)),
                [0; 7],
                "{:?} is blank",
                char::from(code)
            );
        }
        // Distinct glyphs for distinct characters.
        let mut all: Vec<[u8; 7]> = (32u8..=126).map(|c| glyph(char::from(c))).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 95);
        assert_eq!(glyph('\u{e9}'), glyph('?'));
        // 'T': a full top bar, then the stem in the middle column.
        assert_eq!(glyph('T')[0], 0b11111);
        assert_eq!(glyph('T')[6], 0b00100);
    }
}

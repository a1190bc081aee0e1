//! Pictures and text views of puzzles: a small RGB canvas with a bitmap font and PNG output,
//! grid renderers for Sudoku, mazes and ARC, and terminal formatting.
//!
//! The reference has `puzzle_visualizer.html` (a browser page reading the `.npy` files) and
//! matplotlib plots in `arc_eval.ipynb` with the ARC palette; this module gives the same views
//! without a browser or a plotting library, so the training crate can also draw curves,
//! histograms and trace strips with [`Canvas`].

mod font;
mod grids;

pub use crate::text::{format_grid, TaskKind};
pub use font::{ADVANCE as GLYPH_ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, LINE_HEIGHT};
pub use grids::{
    render_arc_grid, render_example, render_maze, render_sudoku, render_tokens, ARC_PALETTE,
};

use std::io::Write;
use std::path::Path;

use crate::error::{DataError, Result};

/// An RGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Black.
    pub const BLACK: Rgb = Rgb(0, 0, 0);
    /// White.
    pub const WHITE: Rgb = Rgb(255, 255, 255);
    /// Mid grey.
    pub const GREY: Rgb = Rgb(128, 128, 128);
    /// Light grey.
    pub const LIGHT_GREY: Rgb = Rgb(220, 220, 220);
    /// Dark grey.
    pub const DARK_GREY: Rgb = Rgb(64, 64, 64);
    /// Red.
    pub const RED: Rgb = Rgb(220, 40, 40);
    /// Blue.
    pub const BLUE: Rgb = Rgb(30, 90, 200);
    /// Green.
    pub const GREEN: Rgb = Rgb(40, 160, 70);

    /// From `0xRRGGBB`.
    pub const fn hex(rgb: u32) -> Rgb {
        Rgb((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8)
    }
}

/// An RGB image in memory, row-major, 3 bytes per pixel. Drawing clips at the edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A `width x height` canvas filled with `background`.
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            pixels.extend_from_slice(&[background.0, background.1, background.2]);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The raw RGB bytes, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The colour at `(x, y)`, `None` outside the canvas.
    pub fn pixel(&self, x: usize, y: usize) -> Option<Rgb> {
        (x < self.width && y < self.height).then(|| {
            let i = (y * self.width + x) * 3;
            Rgb(self.pixels[i], self.pixels[i + 1], self.pixels[i + 2])
        })
    }

    /// Sets one pixel; outside the canvas does nothing.
    #[inline]
    pub fn set_pixel(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
        }
    }

    /// Fills the rectangle with top-left `(x, y)`, clipped to the canvas.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        let x0 = x.clamp(0, self.width as i64) as usize;
        let y0 = y.clamp(0, self.height as i64) as usize;
        let x1 = (x + w).clamp(0, self.width as i64) as usize;
        let y1 = (y + h).clamp(0, self.height as i64) as usize;
        for yy in y0..y1 {
            for xx in x0..x1 {
                let i = (yy * self.width + xx) * 3;
                self.pixels[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
            }
        }
    }

    /// Draws the outline of a rectangle, `thickness` pixels wide, inside its bounds.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: i64, h: i64, thickness: i64, c: Rgb) {
        self.fill_rect(x, y, w, thickness, c);
        self.fill_rect(x, y + h - thickness, w, thickness, c);
        self.fill_rect(x, y, thickness, h, c);
        self.fill_rect(x + w - thickness, y, thickness, h, c);
    }

    /// Draws a one-pixel line from `(x0, y0)` to `(x1, y1)` (Bresenham), both ends included.
    pub fn draw_line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set_pixel(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Width in pixels of `text` drawn at `scale` (the longest line).
    pub fn text_width(text: &str, scale: usize) -> usize {
        let longest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        (longest * font::ADVANCE).saturating_sub(1) * scale
    }

    /// Height in pixels of `text` drawn at `scale`.
    pub fn text_height(text: &str, scale: usize) -> usize {
        let lines = text.lines().count().max(1);
        ((lines - 1) * font::LINE_HEIGHT + font::GLYPH_HEIGHT) * scale
    }

    /// Draws `text` (ASCII 32-126; `\n` starts a new line; others draw as `?`) with its top-left
    /// corner at `(x, y)`, each font pixel a `scale x scale` square. Returns the width drawn.
    pub fn draw_text(&mut self, x: i64, y: i64, text: &str, scale: usize, c: Rgb) -> usize {
        let s = scale.max(1) as i64;
        for (line_no, line) in text.lines().enumerate() {
            let top = y + (line_no * font::LINE_HEIGHT) as i64 * s;
            for (k, ch) in line.chars().enumerate() {
                let left = x + (k * font::ADVANCE) as i64 * s;
                for (row, bits) in font::glyph(ch).iter().enumerate() {
                    for col in 0..font::GLYPH_WIDTH {
                        if bits & (1 << (font::GLYPH_WIDTH - 1 - col)) != 0 {
                            self.fill_rect(left + col as i64 * s, top + row as i64 * s, s, s, c);
                        }
                    }
                }
            }
        }
        Canvas::text_width(text, scale.max(1))
    }

    /// Copies `src` onto this canvas with its top-left corner at `(x, y)`, clipped.
    pub fn blit(&mut self, src: &Canvas, x: i64, y: i64) {
        for sy in 0..src.height {
            let ty = y + sy as i64;
            if ty < 0 || ty as usize >= self.height {
                continue;
            }
            for sx in 0..src.width {
                let tx = x + sx as i64;
                if tx >= 0 && (tx as usize) < self.width {
                    let (si, ti) = (
                        (sy * src.width + sx) * 3,
                        (ty as usize * self.width + tx as usize) * 3,
                    );
                    self.pixels[ti..ti + 3].copy_from_slice(&src.pixels[si..si + 3]);
                }
            }
        }
    }

    /// The image as PNG bytes (8-bit RGB).
    ///
    /// # Errors
    /// [`DataError::Option`] for an empty canvas or an encoder failure.
    pub fn encode_png(&self) -> Result<Vec<u8>> {
        if self.width == 0 || self.height == 0 {
            return Err(DataError::option("canvas", "cannot encode an empty image"));
        }
        let mut out = Vec::new();
        let png_err = |e: png::EncodingError| DataError::option("png", e.to_string());
        let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(png_err)?;
        writer.write_image_data(&self.pixels).map_err(png_err)?;
        writer.finish().map_err(png_err)?;
        Ok(out)
    }

    /// Writes the image as a PNG file, atomically (a temporary file beside it, then a rename).
    ///
    /// # Errors
    /// [`DataError::Io`] naming the file.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let bytes = self.encode_png()?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image.png".into());
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            DataError::io(path, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_clips_and_colours() {
        let mut c = Canvas::new(10, 8, Rgb::WHITE);
        c.fill_rect(-5, -5, 8, 7, Rgb::RED);
        assert_eq!(c.pixel(2, 1), Some(Rgb::RED));
        assert_eq!(c.pixel(3, 1), Some(Rgb::WHITE));
        c.draw_line(0, 7, 9, 7, Rgb::BLUE);
        assert!((0..10).all(|x| c.pixel(x, 7) == Some(Rgb::BLUE)));
        c.draw_line(9, 0, 0, 7, Rgb::GREEN);
        assert_eq!(c.pixel(9, 0), Some(Rgb::GREEN));
        assert_eq!(c.pixel(0, 7), Some(Rgb::GREEN));
        assert_eq!(c.pixel(10, 0), None);
        let mut big = Canvas::new(20, 20, Rgb::BLACK);
        big.blit(&c, 15, -1);
        assert_eq!(big.pixel(15, 0), Some(Rgb::RED));
        assert_eq!(big.pixel(19, 6), Some(Rgb::BLUE));
        assert_eq!(big.pixel(14, 0), Some(Rgb::BLACK));
    }

    #[test]
    fn text_is_drawn_and_measured() {
        assert_eq!(Canvas::text_width("AB", 1), 11);
        assert_eq!(Canvas::text_width("AB\nC", 2), 22);
        assert_eq!(Canvas::text_height("x\ny", 1), 16);
        let mut c = Canvas::new(40, 20, Rgb::WHITE);
        let w = c.draw_text(1, 1, "T1", 2, Rgb::BLACK);
        assert_eq!(w, 22);
        // The top bar of T at scale 2 covers (1..11, 1..3).
        assert!(
            (1..11).all(|x| c.pixel(x, 1) == Some(Rgb::BLACK) && c.pixel(x, 2) == Some(Rgb::BLACK))
        );
        assert_eq!(c.pixel(1, 3), Some(Rgb::WHITE));
    }

    #[test]
    fn png_round_trip_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let mut c = Canvas::new(3, 2, Rgb::WHITE);
        c.set_pixel(1, 1, Rgb(1, 2, 3));
        c.save_png(&path).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[..info.buffer_size()], c.pixels());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert!(matches!(
            c.save_png(&dir.path().join("missing/a.png")),
            Err(DataError::Io { .. })
        ));
    }
}

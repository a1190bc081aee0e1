//! The 8 symmetries of the square (rotations and reflections) on row-major 2-D grids.
//!
//! Mirrors `dihedral_transform`, `inverse_dihedral_transform` and `DIHEDRAL_INVERSE` in the
//! reference's `dataset/common.py`, with the same transform ids (0-7) and the same NumPy
//! semantics (`np.rot90` turns counter-clockwise), so transform ids written into ARC puzzle
//! identifiers mean the same thing in both implementations. Used by the Maze builder (8-fold
//! augmentation) and the ARC builder and evaluator.

/// One of the 8 dihedral transforms, numbered as in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dihedral {
    /// 0: identity.
    Identity,
    /// 1: `np.rot90(a, 1)`, a quarter turn counter-clockwise.
    Rot90,
    /// 2: `np.rot90(a, 2)`, a half turn.
    Rot180,
    /// 3: `np.rot90(a, 3)`, a quarter turn clockwise.
    Rot270,
    /// 4: `np.fliplr(a)`, mirror left-right.
    FlipLr,
    /// 5: `np.flipud(a)`, mirror top-bottom.
    FlipUd,
    /// 6: `a.T`, reflection in the main diagonal.
    Transpose,
    /// 7: `np.fliplr(np.rot90(a))`, reflection in the anti-diagonal.
    AntiTranspose,
}

impl Dihedral {
    /// All 8 transforms, in id order.
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Identity,
        Dihedral::Rot90,
        Dihedral::Rot180,
        Dihedral::Rot270,
        Dihedral::FlipLr,
        Dihedral::FlipUd,
        Dihedral::Transpose,
        Dihedral::AntiTranspose,
    ];

    /// The transform with reference id `id` (0-7).
    pub fn from_id(id: u8) -> Option<Dihedral> {
        Dihedral::ALL.get(usize::from(id)).copied()
    }

    /// The reference id (0-7).
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The transform that undoes this one (the reference's `DIHEDRAL_INVERSE`).
    pub fn inverse(self) -> Dihedral {
        match self {
            Dihedral::Rot90 => Dihedral::Rot270,
            Dihedral::Rot270 => Dihedral::Rot90,
            other => other,
        }
    }

    /// Whether the output has the input's width as its height.
    pub fn swaps_axes(self) -> bool {
        matches!(
            self,
            Dihedral::Rot90 | Dihedral::Rot270 | Dihedral::Transpose | Dihedral::AntiTranspose
        )
    }

    /// `(height, width)` of the output for an input of `(height, width)`.
    pub fn output_shape(self, height: usize, width: usize) -> (usize, usize) {
        if self.swaps_axes() {
            (width, height)
        } else {
            (height, width)
        }
    }

    /// The input cell `(row, col)` that lands at output cell `(i, j)`, for an input of
    /// `height x width`.
    #[inline]
    pub fn source(self, i: usize, j: usize, height: usize, width: usize) -> (usize, usize) {
        let (h, w) = (height, width);
        match self {
            Dihedral::Identity => (i, j),
            Dihedral::Rot90 => (j, w - 1 - i),
            Dihedral::Rot180 => (h - 1 - i, w - 1 - j),
            Dihedral::Rot270 => (h - 1 - j, i),
            Dihedral::FlipLr => (i, w - 1 - j),
            Dihedral::FlipUd => (h - 1 - i, j),
            Dihedral::Transpose => (j, i),
            Dihedral::AntiTranspose => (h - 1 - j, w - 1 - i),
        }
    }

    /// Transforms a row-major `height x width` grid; the result is row-major with shape
    /// [`Dihedral::output_shape`].
    ///
    /// # Panics
    /// If `data.len() != height * width`.
    pub fn apply<T: Copy>(self, data: &[T], height: usize, width: usize) -> Vec<T> {
        assert_eq!(
            data.len(),
            height * width,
            "grid data does not match its shape"
        );
        if self == Dihedral::Identity {
            return data.to_vec();
        }
        let (oh, ow) = self.output_shape(height, width);
        let mut out = Vec::with_capacity(data.len());
        for i in 0..oh {
            for j in 0..ow {
                let (r, c) = self.source(i, j, height, width);
                out.push(data[r * width + c]);
            }
        }
        out
    }
}

impl std::fmt::Display for Dihedral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2x3 grid with distinct cells: [[0, 1, 2], [3, 4, 5]].
    const G: [u8; 6] = [0, 1, 2, 3, 4, 5];

    #[test]
    fn matches_numpy() {
        // Expected values computed with NumPy on np.arange(6).reshape(2, 3).
        let cases: [(Dihedral, &[u8]); 8] = [
            (Dihedral::Identity, &[0, 1, 2, 3, 4, 5]),
            (Dihedral::Rot90, &[2, 5, 1, 4, 0, 3]),
            (Dihedral::Rot180, &[5, 4, 3, 2, 1, 0]),
            (Dihedral::Rot270, &[3, 0, 4, 1, 5, 2]),
            (Dihedral::FlipLr, &[2, 1, 0, 5, 4, 3]),
            (Dihedral::FlipUd, &[3, 4, 5, 0, 1, 2]),
            (Dihedral::Transpose, &[0, 3, 1, 4, 2, 5]),
            (Dihedral::AntiTranspose, &[5, 2, 4, 1, 3, 0]),
        ];
        for (t, expected) in cases {
            assert_eq!(t.apply(&G, 2, 3), expected, "{t:?}");
        }
    }

    #[test]
    fn inverse_undoes_every_transform() {
        for t in Dihedral::ALL {
            let (h, w) = t.output_shape(2, 3);
            assert_eq!(t.inverse().apply(&t.apply(&G, 2, 3), h, w), G, "{t:?}");
            assert_eq!(
                t.apply(
                    &t.inverse().apply(&G, 2, 3),
                    t.inverse().output_shape(2, 3).0,
                    t.inverse().output_shape(2, 3).1
                ),
                G
            );
            assert_eq!(Dihedral::from_id(t.id()), Some(t));
        }
        assert_eq!(Dihedral::from_id(8), None);
    }

    #[test]
    fn the_eight_are_distinct() {
        let square: Vec<u8> = (0..9).collect();
        let mut outs: Vec<Vec<u8>> = Dihedral::ALL
            .iter()
            .map(|t| t.apply(&square, 3, 3))
            .collect();
        outs.sort();
        outs.dedup();
        assert_eq!(outs.len(), 8);
    }
}

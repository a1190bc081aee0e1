//! Cast-on-use linear and embedding layers, as `CastedLinear` and `CastedEmbedding` in the
//! reference's `models/layers.py`.
//!
//! Parameters are stored in float32; each forward uses them in the dtype of its input (the
//! forward dtype), so bfloat16 runs keep float32 master weights. Where the reference casts at
//! every call, the bfloat16 copy is kept until the optimiser changes the parameter
//! ([`crate::cast_cache`]), and on the CPU the product takes the faster of two kernels for its
//! shape ([`crate::linear_route`]). Initialisation is the truncated normal of [`crate::init`]:
//! `1/sqrt(in_features)` for linear weights, a caller-chosen std for embeddings; biases start at
//! zero.

use tch::{nn, Kind, Tensor};

use crate::cast_cache::{records_grad, CastCache};
use crate::init::trunc_normal;
use crate::linear_route;

/// `y = x W^T (+ b)` with `W: [out, in]` stored in float32 and used in `x`'s dtype.
#[derive(Debug)]
pub struct CastedLinear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, when the layer has a bias.
    pub bias: Option<Tensor>,
    weight_cast: CastCache,
    bias_cast: CastCache,
}

impl CastedLinear {
    /// Creates `p/weight` (and `p/bias`) initialised as the reference does.
    pub fn new(p: nn::Path, in_features: i64, out_features: i64, bias: bool) -> Self {
        let std = 1.0 / (in_features as f64).sqrt();
        let weight = p.add(
            "weight",
            trunc_normal(&[out_features, in_features], std, p.device()),
            true,
        );
        let bias = bias.then(|| {
            p.add(
                "bias",
                Tensor::zeros([out_features], (Kind::Float, p.device())),
                true,
            )
        });
        CastedLinear {
            weight,
            bias,
            weight_cast: CastCache::new(),
            bias_cast: CastCache::new(),
        }
    }

    /// # Shapes
    /// `x: [..., in]` -> `[..., out]`, in `x`'s dtype.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let w = self.weight_cast.get(&self.weight, kind);
        let b = self.bias.as_ref().map(|b| self.bias_cast.get(b, kind));
        // Whether this call records a graph: its route is then timed with the backward pass.
        let backward = records_grad(x) || records_grad(&self.weight);
        linear_route::linear(x, &w, b.as_ref(), backward)
    }
}

/// A lookup table `[num_embeddings, dim]` in float32, returned in the forward dtype.
#[derive(Debug)]
pub struct CastedEmbedding {
    /// `[num_embeddings, dim]`; named `embedding_weight` as in the reference.
    pub embedding_weight: Tensor,
    cast: CastCache,
}

impl CastedEmbedding {
    /// Creates `p/embedding_weight` with a truncated normal of standard deviation `init_std`.
    pub fn new(p: nn::Path, num_embeddings: i64, dim: i64, init_std: f64) -> Self {
        let w = trunc_normal(&[num_embeddings, dim], init_std, p.device());
        CastedEmbedding {
            embedding_weight: p.add("embedding_weight", w, true),
            cast: CastCache::new(),
        }
    }

    /// # Shapes
    /// `ids: [...]` (int) -> `[..., dim]` in `kind`.
    pub fn forward(&self, ids: &Tensor, kind: Kind) -> Tensor {
        let table = self.cast.get(&self.embedding_weight, kind);
        Tensor::embedding(&table, ids, -1, false, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_explicit_product_and_casts() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let lin = CastedLinear::new(vs.root() / "lin", 3, 2, true);
        tch::no_grad(|| {
            lin.weight
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[1.0f32, 2., 3., 4., 5., 6.]).view([2, 3]));
            let bias = lin.bias.as_ref().expect("bias");
            bias.shallow_clone()
                .copy_(&Tensor::from_slice(&[0.5f32, -0.5]));
        });
        let x = Tensor::from_slice(&[1.0f32, 0., -1.]).view([1, 3]);
        let y = lin.forward(&x);
        assert_eq!(
            Vec::<f32>::try_from(y.view([-1])).expect("f32"),
            vec![-1.5, -2.5]
        );
        let y16 = lin.forward(&x.to_kind(Kind::BFloat16));
        assert_eq!(y16.kind(), Kind::BFloat16);
        assert_eq!(vs.variables().len(), 2);
        assert!(vs.variables().contains_key("lin.weight"));
    }
}

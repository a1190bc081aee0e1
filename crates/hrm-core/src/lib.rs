//! hrm-core (work in progress).

#[cfg(test)]
mod tests {
    #[test]
    fn libtorch_links() {
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0]).sum(tch::Kind::Float);
        assert_eq!(t.double_value(&[]), 3.0);
    }
}
#[cfg(test)]
mod cuda_probe {
    #[test]
    fn cuda_probe() {
        eprintln!("cuda available: {}", tch::Cuda::is_available());
    }
}

//! Prints the CPU linear-layer route chosen for each shape of one preset (see
//! [`hrm_core::linear_route`]): runs one training step and one evaluation rollout of the
//! preset's bench model, then lists every decision with both routes' best times.
//!
//! `cargo run --release -p hrm-benches --example linear_routes -- small bf16 2`
//! (preset, dtype, threads; defaults small, f32 and libtorch's thread count).

use hrm_benches::{BenchPreset, BenchSetup};
use hrm_core::linear_route::{decisions, LinearRoute};
use hrm_core::ForwardDtype;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preset: BenchPreset = args.first().map_or("small", String::as_str).parse()?;
    let dtype: ForwardDtype = args.get(1).map_or("f32", String::as_str).parse()?;
    if let Some(threads) = args.get(2) {
        tch::set_num_threads(threads.parse()?);
    }
    if let Some(route) = LinearRoute::from_env()? {
        println!("routes forced by the environment: {route}");
    }
    let mut setup = BenchSetup::new(preset, dtype, tch::Device::Cpu, 0)?;
    setup.train_step()?;
    drop(setup.eval_rollout());
    println!(
        "{preset} {} threads={}: input [b, s, in] -> out, backward, route, blas ms, onednn ms",
        dtype.short_name(),
        tch::get_num_threads()
    );
    for d in decisions() {
        let times = d.timings.map_or("forced".to_string(), |(b, o)| {
            format!("{:.3} {:.3}", b.as_secs_f64() * 1e3, o.as_secs_f64() * 1e3)
        });
        println!(
            "{:?} -> {} {} backward={} {} {}",
            d.key.input, d.key.out_features, d.key.dtype, d.key.backward, d.route, times
        );
    }
    Ok(())
}

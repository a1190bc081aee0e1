//! The `hrm` command.
fn main() {}

//! The platform as the device tree describes it: memory, console, CPUs, PSCI and the
//! host's boot modules, and the host's view of physical memory derived from them.

pub mod console;
pub mod devices;
pub mod dt;
pub mod host_dt;
pub mod memmap;
pub mod smmuv3;

#[cfg(all(target_os = "none", feature = "runtime"))]
pub mod emergency;
#[cfg(all(target_os = "none", feature = "runtime"))]
pub mod logger;

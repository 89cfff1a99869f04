//! libkvmshim.so: the LD_PRELOAD library.
//!
//! State: not written yet. The interposition of `ioctl()` and the fd
//! registry come with the shim issue; until then this crate builds an empty
//! library and the README says so. Nothing here claims to work.

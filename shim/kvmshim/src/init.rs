//! The library constructor: runs when the dynamic loader maps the shim,
//! before the program's main (and, for LD_PRELOAD, before the other
//! libraries' constructors run their code that may call ioctl).

/// Runs once at load. Never panics across the C ABI: each half catches its
/// own failures and reports them on stderr.
extern "C" fn kvmshim_init() {
    let _ = std::panic::catch_unwind(|| {
        crate::interpose::init();
        crate::trap::init();
    });
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = kvmshim_init;

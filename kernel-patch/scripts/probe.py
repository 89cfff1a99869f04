import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(1004, ctypes.c_uint(0xffffffff))
print("PROBE kvmng_run(~0U) =", r, "errno", ctypes.get_errno())

"""What the kernel hands down to the parts it runs.

_kernel sets these once it has made the shell; the parts that need them
(the pool) read them here, instead of reaching up into _kernel.  In a
worker, or outside a kernel, they stay None.
"""
recorder = None  # the shell's re-export recorder, or None

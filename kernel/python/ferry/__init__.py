"""ferry: send what you define in notebook cells to worker processes.

Inside a ferry kernel, `ferry.runtime_dir` names the kernel's private
runtime directory (mode 0700), where the re-exported definitions live.
"""
__version__ = "0.1.0"

# Set by the kernel at start; None outside a ferry kernel.
runtime_dir = None

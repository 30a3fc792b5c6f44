"""tunebench: did fine-tuning help, what did it break, is it worth it.

Importing the package first sets OMP_WAIT_POLICY=PASSIVE: measured on 2 shared cores, spinning
OpenMP threads made generation 7-50x slower (2.2 tokens/s instead of 16.6 at batch 1 while another
process kept one core busy). It must happen before torch
is imported, which is why every script imports tunebench before anything heavy.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

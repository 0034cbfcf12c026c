"""`python -m pointpillars_trt`"""
import sys

from .cli import main

sys.exit(main())

"""`python -m pointpillars_trt`"""
import sys

from pointpillars_trt.cli import main

sys.exit(main())

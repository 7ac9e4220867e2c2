"""lutgen: approximate multiplier circuits to lookup tables, and DNNs run through them.

The import package is ``approxlut``; the distribution and the command are ``lutgen`` (the folder
``lutgen/`` holds the LUT generator, see DESIGN.md).
"""

__version__ = "0.1.0"

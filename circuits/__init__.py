"""The netlist IR and its readers and writers (Verilog, BLIF, SOP). Never simulates, never imports torch."""

from .netlist import ARITY, Cover, Gate, Kind, Netlist, NetlistBuilder, SourceLoc

__all__ = ["ARITY", "Cover", "Gate", "Kind", "Netlist", "NetlistBuilder", "SourceLoc"]

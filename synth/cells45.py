"""A documented 45 nm-class standard-cell table for lutgen's power, area and delay estimates.

The figures are *approximate class values* for X1-drive static-CMOS cells of the open 45 nm
libraries built on FreePDK45 — the NanGate FreePDK45 Open Cell Library and the OSU ``gscl45nm``
library whose cell names (``AND2X1``, ``XOR2X1``, ``FAX1`` ...) EvoApproxLib's ``_pdk45`` netlists
use. They are not copied from either library's Liberty file: relative sizes follow transistor
counts and stacking (an inverter is 2 transistors, NAND2/NOR2 4, AND2/OR2 6, XOR2/XNOR2 and MUX2
about 10-12), with absolute scales typical of those libraries (areas of a few µm², delays of tens
of ps at a fan-out of about two, switching energies of a few fJ per output transition at 1.1 V,
leakage of tens of nW). Three global factors (:data:`AREA_SCALE`, :data:`ENERGY_SCALE`,
:data:`DELAY_SCALE` below) put lutgen's exact 8×8 array multiplier on EvoApproxLib's published
figures for its exact ``mul8u_1JFF`` (709.6 µm², 0.391 mW, 1.43 ns); they were set once from that
one pair, not fitted per circuit, and everything else is relative. Treat estimates as a ranking
aid, not sign-off figures;
:func:`approxlut.synth.power.calibrate` reports how well they rank the EvoApproxLib circuits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellData:
    """One cell: area (µm²), intrinsic delay (ns), energy per output toggle (fJ), leakage (nW)."""

    area_um2: float
    delay_ns: float
    energy_fj: float
    leakage_nw: float


#: The cells lutgen maps its gates onto (wider gates become trees of the two- and three-input ones).
CELLS: dict[str, CellData] = {
    "INVX1": CellData(area_um2=1.41, delay_ns=0.018, energy_fj=1.0, leakage_nw=12.0),
    "NAND2X1": CellData(area_um2=1.88, delay_ns=0.024, energy_fj=1.3, leakage_nw=16.0),
    "NOR2X1": CellData(area_um2=1.88, delay_ns=0.030, energy_fj=1.4, leakage_nw=16.0),
    "AND2X1": CellData(area_um2=2.35, delay_ns=0.042, energy_fj=1.9, leakage_nw=22.0),
    "OR2X1": CellData(area_um2=2.35, delay_ns=0.048, energy_fj=2.0, leakage_nw=22.0),
    "AND3X1": CellData(area_um2=2.82, delay_ns=0.050, energy_fj=2.2, leakage_nw=26.0),
    "OR3X1": CellData(area_um2=2.82, delay_ns=0.058, energy_fj=2.4, leakage_nw=26.0),
    "NAND3X1": CellData(area_um2=2.35, delay_ns=0.032, energy_fj=1.6, leakage_nw=20.0),
    "NOR3X1": CellData(area_um2=2.35, delay_ns=0.045, energy_fj=1.8, leakage_nw=20.0),
    "XOR2X1": CellData(area_um2=3.76, delay_ns=0.060, energy_fj=3.2, leakage_nw=34.0),
    "XNOR2X1": CellData(area_um2=3.76, delay_ns=0.060, energy_fj=3.2, leakage_nw=34.0),
    "MUX2X1": CellData(area_um2=3.76, delay_ns=0.062, energy_fj=3.0, leakage_nw=32.0),
}

#: Multiplies every cell area (709.6 / 898.64, see the module docstring).
AREA_SCALE = 0.790
#: Multiplies every switching energy ((0.391 - leakage) / dynamic power at scale 1).
ENERGY_SCALE = 1.454
#: Multiplies every cell delay (1.43 / 1.992).
DELAY_SCALE = 0.718
#: Operand rate (new operand pair per cycle) at which switching energy becomes power.
CLOCK_GHZ = 1.0

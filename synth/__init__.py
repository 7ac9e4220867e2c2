"""synth: gate-level multipliers lutgen makes itself, and what they cost.

- :mod:`.generators`: exact array, Wallace and Dadda multipliers (Baugh-Wooley when signed);
- :mod:`.approx`: approximation families (truncation, broken array, perforation, lower-part OR,
  Mitchell, DRUM, operand rounding), each with the numpy formula of what its circuit computes;
- :mod:`.builtin`: the built-in library shipped with lutgen;
- :mod:`.als`: greedy approximate logic synthesis under an error bound;
- :mod:`.power` with :mod:`.cells45`: power, area and delay estimates and their calibration;
- :mod:`.yosys`: behavioural Verilog to gates through Yosys;
- :mod:`.logic`: the constant-folding gate builder and ``simplify`` pass they share.
"""

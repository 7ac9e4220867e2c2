#!/usr/bin/env bash
# `make demo`: the whole lutgen path on built-in data, in a scratch folder (out/demo) so nothing in
# the user's home is touched: generate a multiplier, simulate it, build the library, evaluate a
# network with --assign auto, and print what was found.
set -euo pipefail
venv=${1:-.venv}
lutgen="$venv/bin/lutgen"
work=out/demo
mkdir -p "$work"
export LUTGEN_LIBRARY="$PWD/$work/library"
export LUTGEN_CACHE="${LUTGEN_CACHE:-$PWD/out/cache}"
model=${DEMO_MODEL:-lenet5}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Generate an approximate 8x8 signed multiplier (Baugh-Wooley array, 6 columns truncated)"
"$lutgen" synth generate truncated --bits 8 --signed --param k=6 --out "$work/my_trunc8s.blif"

step "2. Simulate it bit-parallel: metrics, LUT and gradient LUTs"
"$lutgen" sim "$work/my_trunc8s.blif" --signed --out "$work/my_trunc8s.npz"

step "3. Build the multiplier library (built-in exact and approximate families) and browse it"
"$lutgen" library init
"$lutgen" library import --signed "$work/my_trunc8s.blif"
"$lutgen" library list --bits 8 --signed --sort power
"$lutgen" library pareto --x power --y mae --bits 8 --signed --plot "$work/pareto.png"

step "4. Evaluate $model on the built-in digits with a multiplier chosen per layer (--assign auto)"
"$lutgen" evaluate --model "$model" --assign auto --budget 1 --save "$work/assignment.json" --plot "$work/energy.png"

step "Done: files are in $work/"
ls "$work"

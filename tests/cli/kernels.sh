#!/usr/bin/env bash
# lorac version: the kernel level in use and the CPU's, the LORAC_ISA cap (a misspelt one is refused
# with one line), and OpenBLAS's kernel when lorac chooses it (README, CPU support): only when
# OpenBLAS fell back to kernels older than the CPU and OPENBLAS_CORETYPE is unset, never above the
# cap, off with LORAC_BLAS_CORE=keep. The environment's OPENBLAS_CORETYPE is left as it is.
# Usage: kernels.sh LORAC SOURCE_DIR
set -u
lorac=$1
fail=0
err() { echo "FAIL: $*"; fail=1; }
field() { sed -n "s/^$1: \([A-Za-z0-9]*\).*/\1/p" <<<"$2"; }

out=$("$lorac" version) || { echo "FAIL: lorac version exits non-zero"; exit 1; }
cpu=$(field cpu "$out")
case $cpu in generic|avx2|avx512|avx512bf16) ;; *) err "cpu level '$cpu'";; esac
[ "$(field kernels "$out")" = "$cpu" ] || [ -n "${LORAC_ISA:-}" ] || err "kernels != cpu without a cap: $out"

# a cap: never above the CPU's level; a misspelt one: exit 2, one stderr line naming it
for cap in generic avx2; do
  k=$(LORAC_ISA=$cap "$lorac" version | sed -n 's/^kernels: \([a-z0-9]*\).*/\1/p')
  [ "$k" = "$cap" ] || [ "$cpu" = generic ] || err "LORAC_ISA=$cap gave kernels $k"
done
e=$(LORAC_ISA=avx3 "$lorac" version 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] || err "LORAC_ISA=avx3 exit $rc"
[ "$(wc -l <<<"$e")" -eq 1 ] && grep -q 'LORAC_ISA=avx3' <<<"$e" || err "LORAC_ISA=avx3 message: $e"

core=$(field openblas "$out")
if grep -q 'lorac set OPENBLAS_CORETYPE' <<<"$out"; then
  [ -z "${OPENBLAS_CORETYPE:-}" ] || err "lorac chose a kernel although OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
  case $core in SkylakeX) [ "${cpu#avx512}" != "$cpu" ] || err "SkylakeX on a $cpu CPU";; Haswell) ;; *) err "chosen kernel $core";; esac
  grep -q "OPENBLAS_CORETYPE=$core\$" <<<"$out" || err "the note names another kernel than OpenBLAS runs: $out"
  c2=$(LORAC_ISA=avx2 "$lorac" version)
  [ "$(field openblas "$c2")" = Haswell ] || err "under LORAC_ISA=avx2 OpenBLAS runs $(field openblas "$c2")"
  c3=$(LORAC_ISA=generic "$lorac" version)
  grep -q 'lorac set' <<<"$c3" && err "under LORAC_ISA=generic lorac still chose a kernel: $c3"
  k=$(LORAC_BLAS_CORE=keep "$lorac" version)
  grep -q 'lorac set' <<<"$k" && err "LORAC_BLAS_CORE=keep still chose a kernel"
  grep -q "did not recognise this CPU; OPENBLAS_CORETYPE=$core selects" <<<"$k" || err "LORAC_BLAS_CORE=keep: no note: $k"
else
  echo "kernels.sh: OpenBLAS runs $core (its own choice or OPENBLAS_CORETYPE): lorac chose nothing; the choice itself is not exercised here"
  k=$(LORAC_BLAS_CORE=keep "$lorac" version)
  [ "$(field openblas "$k")" = "$core" ] || err "LORAC_BLAS_CORE=keep changed the kernel"
fi
[ $fail -eq 0 ] && echo "kernels.sh: all checks passed (cpu $cpu, OpenBLAS $core)"
exit $fail

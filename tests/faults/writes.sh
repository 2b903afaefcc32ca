#!/usr/bin/env bash
# What this proves: the writes other than checkpoints (the metrics file, the predictions
# file, the converter's data set) fail cleanly on a full disk: every rank exits non-zero
# with the same status, exactly one message naming the file and the reason ("No space left
# on device"), no segfault, no partial output and no temporary file left; the checkpoint
# C.h5 of the working directory stays byte-identical. The full disk is a small tmpfs
# mounted outside the working directory (root only: without it the cases exit 77).
#
#   metrics_full_disk  train --metrics FULL/m.jsonl, np 2, a tmpfs of 8, 12 or 20 KiB fills
#                  mid-run (before the fix: exit 0 on every rank and the last line cut in
#                  the middle); the file must hold only whole, valid JSON lines, ending in
#                  a newline
#   predict_full_disk  predict --output FULL/P.h5, np 2, on a full tmpfs (before the fix: a
#                  message without the reason); no P.h5 and no P.h5.tmp* left
#   convert_full_disk  pcn_convert -o FULL/D.h5 with the tmpfs too small for the data set
#                  (below and above the converter's 64 KiB probe) and with it full, run
#                  alone and under mpirun -np 2 (two independent converters) (before the
#                  fix: a segfault in HDF5's exit handler after the failed close, or HDF5's
#                  "infinite loop closing library", and a message over two lines); exit 1
#                  on every process, one line on stderr, nothing left in the tmpfs
#   normal_disk    positive control on an ordinary disk: the metrics file holds one line
#                  per batch, per epoch and a final test line with exactly the documented
#                  keys (io/pcn_io.h); the predictions file has the layout the H5LT
#                  writer made (h5dump -H below), pred is argmax of yhat, and pred scores
#                  the same accuracy as `pcn_dist test` on that split. It passes before and
#                  after the fix: it guards what the fix must not change.
#
# Usage: writes.sh CASE. Environment (set by CTest): those of harness.sh, and FAULT_SCRATCH.
set -u
case_name=${1:?usage: writes.sh CASE}
SCRATCH=${FAULT_SCRATCH:?}/writes
. "$(dirname "$0")/../cli/harness.sh"

# ---- this script's additions to the harness ---------------------------------------------

bad() { failures=$((failures + 1)); say "FAIL $*"; }
full=$top/full

# mount_full SIZE: a tmpfs of SIZE at $full, unmounted when the script exits.
mount_full() {
  [ "$(id -u)" = 0 ] || { say "$case_name: needs root for a tmpfs mount: skipped"; exit 77; }
  mkdir -p "$full"
  mount -t tmpfs -o "size=$1" tmpfs "$full" 2> /dev/null ||
    { say "$case_name: cannot mount a tmpfs: skipped"; exit 77; }
  trap 'cd / && { umount "$full" 2> /dev/null || umount -l "$full"; }' EXIT
}

# fill_full: writes a file into $full until the tmpfs is full.
fill_full() { cat /dev/zero > "$full/fill" 2> /dev/null; [ -s "$full/fill" ] || setup_fail "fill"; }

# timed_fail NAME KEYS ARGS...: expect_fail, and the run ended within 20 s.
timed_fail() {
  local t0=$SECONDS
  expect_fail "$@"
  [ $((SECONDS - t0)) -le 20 ] || bad "$1: took $((SECONDS - t0)) s (want <= 20 s)"
}

# only_in_full FILES...: $full holds exactly these names (no temporary or partial file).
only_in_full() {
  local have want
  have=$(cd "$full" && ls -A | sort | tr '\n' ' ')
  want=$(printf '%s\n' "$@" | sed '/^$/d' | sort | tr '\n' ' ')
  [ "$have" = "$want" ] || bad "$case_name: the full disk holds [$have], want [$want]"
}

# json_lines FILE: every line a JSON object, the file ends with a newline; prints the count.
json_lines() {
  python3 - "$1" << 'EOF'
import json, sys
data = open(sys.argv[1], "rb").read()
if data and not data.endswith(b"\n"):
    sys.exit("the last line is cut: ...%r" % data[-60:])
for i, line in enumerate(data.decode().splitlines()):
    try:
        ev = json.loads(line)
    except ValueError as e:
        sys.exit("line %d is not JSON (%s): %r" % (i + 1, e, line[-60:]))
    if not isinstance(ev, dict) or "event" not in ev:
        sys.exit("line %d is not a metrics record: %r" % (i + 1, line[:60]))
print(len(data.decode().splitlines()))
EOF
}

# ---- cases -----------------------------------------------------------------------------

case $case_name in
metrics_full_disk)
  setup_ckpt
  # 3 epochs of 32 batches of 2 rows: ~35 KiB of batch lines, into 8, 12 and 20 KiB (the
  # disk fills in the first epoch, at its end, in the second)
  for size in 8k 12k 20k; do
    mount_full $size
    timed_fail "metrics_$size" "metrics|space|m.jsonl" train --data d.h5 --dims 16,8,4 \
      --epochs 3 --batch-size 2 --t-infer 5 --t-infer-test 10 --progress 0 --checkpoint C.h5 \
      --overwrite --metrics "$full/m.jsonl" # the full disk, not the old C.h5, must stop it
    if lines=$(json_lines "$full/m.jsonl" 2>&1); then
      [ "$lines" -ge 10 ] || bad "metrics_$size: only $lines lines before the disk filled"
      say "     m.jsonl: $lines whole JSON lines, $(stat -c %s "$full/m.jsonl") bytes"
    else
      bad "metrics_$size: $full/m.jsonl: $lines"
    fi
    only_in_full m.jsonl
    cd "$work" && umount "$full" && trap - EXIT
  done
  ;;
predict_full_disk)
  setup_ckpt
  mount_full 16k
  fill_full
  timed_fail predict "P.h5|space" predict --data d.h5 --checkpoint C.h5 --split train \
    --output "$full/P.h5"
  only_in_full fill
  ;;
convert_full_disk)
  big=$top/idx28
  mkdir -p "$big"
  idx_images "$big/tri" 64 28 28 1 && idx_labels "$big/trl" 64 &&
    idx_images "$big/tei" 32 28 28 5 && idx_labels "$big/tel" 32 || setup_fail "IDX files"
  conv=(idx --train-images "$big/tri" --train-labels "$big/trl" --test-images "$big/tei"
        --test-labels "$big/tel" --classes 4 -o "$full/D.h5")
  # check_convert NAME STATUSES FILES...: every process exited 1, one line each naming the
  # file and the reason, nothing else on stderr, and $full holds just FILES.
  check_convert() {
    local name=$1 codes=$2 lines msg k
    shift 2
    runs=$((runs + 1))
    for k in $codes; do
      [ "$k" = 1 ] || { bad "$name: exit statuses [$codes], want 1 for every process"; break; }
    done
    lines=$(grep -c '^pcn_convert:' "$log/$name.err")
    msg=$(grep '^pcn_convert:' "$log/$name.err" | head -n 1)
    [ "$lines" = "$(wc -w <<< "$codes")" ] ||
      bad "$name: $lines stderr lines start with 'pcn_convert:' (want one per process)"
    for k in D.h5 "No space left on device"; do
      grep -q -F -- "$k" <<< "$msg" || bad "$name: message lacks '$k': $msg"
    done
    [ -z "$(awk '/^-----+$/ { f = !f; next } !f && NF && !/^pcn_convert:/' "$log/$name.err")" ] ||
      bad "$name: other stderr output: $(grep -v '^pcn_convert:' "$log/$name.err" | head -n 5 | tr '\n' '|')"
    only_in_full "$@"
    say "     $name: exit [$codes]: ${msg:0:160}"
  }
  # tiny: 32 KiB, below pcn_convert's 64 KiB probe; too_small: 72 KiB, past the probe, so
  # HDF5 itself meets the full disk (the data set takes ~ 85 KiB); full: no room at all.
  for variant in tiny too_small full; do
    case $variant in tiny) mount_full 32k ;; too_small) mount_full 72k ;; full) mount_full 32k ;; esac
    [ "$variant" = full ] && fill_full
    keep=(); [ "$variant" = full ] && keep=(fill)
    t0=$SECONDS
    timeout 60 "$PCN_CONVERT" "${conv[@]}" > "$log/np1_$variant.out" 2> "$log/np1_$variant.err"
    check_convert "np1_$variant" "$?" "${keep[@]}"
    rm -f "$log/mpi_$variant".rc*
    RCFILE=$log/mpi_$variant.rc timeout 60 "$MPIEXEC" -np 2 --oversubscribe -x RCFILE \
      bash -c '"$0" "$@"; s=$?; echo $s > "$RCFILE$OMPI_COMM_WORLD_RANK"; exit $s' \
      "$PCN_CONVERT" "${conv[@]}" > "$log/mpi_$variant.out" 2> "$log/mpi_$variant.err"
    codes="$(cat "$log/mpi_$variant.rc0" 2> /dev/null || echo -) $(cat "$log/mpi_$variant.rc1" 2> /dev/null || echo -)"
    check_convert "mpi_$variant" "$codes" "${keep[@]}"
    [ $((SECONDS - t0)) -le 20 ] || bad "convert $variant: took $((SECONDS - t0)) s"
    cd "$work" && umount "$full" && trap - EXIT
  done
  ;;
normal_disk)
  setup_ckpt
  runs=3
  expect_ok train train --data d.h5 --dims 16,8,4 --epochs 2 --batch-size 16 --t-infer 5 \
    --t-infer-test 10 --progress 0 --checkpoint C2.h5 --metrics m.jsonl || exit 1
  python3 - m.jsonl << 'EOF' || bad "metrics: m.jsonl is not as documented"
import json, sys
phases = ["inference", "learning", "collectives", "io", "checkpoint"]
keys = {"batch": ["event", "epoch", "batch", "samples", "energy", "pre_learn_energy", "lr",
                  "running_accuracy", "samples_per_s", "seconds", "rank0_seconds",
                  "collectives", "bytes_sent"],
        "epoch": ["event", "epoch", "ranks", "energy", "pre_learn_energy", "train_accuracy",
                  "lr", "seconds", "samples_per_s", "seconds_max", "seconds_mean"],
        "test": ["event", "samples", "accuracy", "top_k", "energy", "mse", "seconds"]}
evs = [json.loads(l) for l in open(sys.argv[1])]
kinds = [e["event"] for e in evs]
want = (["batch"] * 4 + ["epoch"]) * 2 + ["test"]
if kinds != want: sys.exit("events %s, want %s" % (kinds, want))
for e in evs:
    if list(e) != keys[e["event"]]: sys.exit("keys %s" % list(e))
    for k in ("rank0_seconds", "seconds_max", "seconds_mean"):
        if k in e and list(e[k]) != phases: sys.exit("%s: %s" % (k, list(e[k])))
b = [e for e in evs if e["event"] == "batch"]
if [(e["epoch"], e["batch"], e["samples"]) for e in b] != [(p, q, 16) for p in (0, 1) for q in range(4)]:
    sys.exit("batch positions %s" % [(e["epoch"], e["batch"]) for e in b])
if [e["ranks"] for e in evs if e["event"] == "epoch"] != [2, 2]: sys.exit("ranks")
# Two ranks: every batch made collectives (sums, agreement), whole numbers of bytes.
if not all(isinstance(e["collectives"], int) and e["collectives"] > 0 and
           isinstance(e["bytes_sent"], int) and e["bytes_sent"] > 0 for e in b):
    sys.exit("collectives %s" % [(e["collectives"], e["bytes_sent"]) for e in b])
if evs[-1]["samples"] != 32: sys.exit("test samples")
print("     m.jsonl: %d lines as documented" % len(evs))
EOF
  expect_ok predict predict --data d.h5 --checkpoint C.h5 --split train --output P.h5 || exit 1
  expect_ok test_train test --data d.h5 --checkpoint C.h5 --split train --json || exit 1
  python3 - "$log/test_train.out" << 'EOF' || bad "test --json: the confusion matrix does not add up"
import json, sys
v = json.loads(open(sys.argv[1]).read())
c, K = v["confusion"], len(v["confusion"])
if K != 4 or any(len(r) != K for r in c): sys.exit("shape %s" % c)
if sum(map(sum, c)) != v["samples"]: sys.exit("%d counts for %d samples" % (sum(map(sum, c)), v["samples"]))
if abs(sum(c[i][i] for i in range(K)) / v["samples"] - v["accuracy"]) > 1e-6: sys.exit("trace / samples != accuracy")
for i in range(K):
    n = sum(c[i])
    if n and abs(c[i][i] / n - v["per_class_accuracy"][i]) > 1e-6: sys.exit("class %d" % i)
EOF
  expect_ok info_pred info P.h5 || exit 1
  grep -q '64 rows x 4 outputs' "$log/info_pred.out" && grep -q 'train split of d.h5' "$log/info_pred.out" ||
    bad "info P.h5 does not describe the predictions: $(cat "$log/info_pred.out")"
  # its accuracy: /pred against d.h5's /train/y, counted here from h5dump's text
  right=$(paste <(h5dump -d /pred -y -w 1 P.h5 | grep -E '^ *-?[0-9]+,?$' | tr -d ' ,') \
                <(h5dump -d /train/y -y -w 1 d.h5 | grep -E '^ *-?[0-9]+,?$' | tr -d ' ,') |
          awk '$1 == $2 { n++ } END { printf "%d of %d", n, NR }')
  grep -q "($right) against the labels /train/y of d.h5" "$log/info_pred.out" ||
    bad "info P.h5: expected the accuracy $right, got: $(grep accuracy "$log/info_pred.out")"
  # under mpirun, as every run here: a singleton Open MPI process crashes LeakSanitizer's
  # exit-time thread stop in the sanitizer build ("Tracer caught signal 11")
  mkdir -p away && cp P.h5 away/ && (cd away && "$MPIEXEC" -np 1 "$PCN_DIST" info P.h5 > info.out 2>&1) &&
    grep -q 'accuracy: not known (the data set it names is not at hand)' away/info.out ||
    bad "info on predictions whose data set is elsewhere: $(cat away/info.out)"
  ls ./*.tmp* > /dev/null 2>&1 && bad "predict: a temporary file is left: $(ls ./*.tmp*)"
  # the layout of the H5LT writer (h5dump -H of its file, taken before the change)
  diff <(h5dump -H P.h5 | sed 1d) - << 'EOF' || bad "predict: P.h5's layout changed (diff above)"
GROUP "/" {
   ATTRIBUTE "checkpoint" {
      DATATYPE  H5T_STRING {
         STRSIZE 5;
         STRPAD H5T_STR_NULLTERM;
         CSET H5T_CSET_ASCII;
         CTYPE H5T_C_S1;
      }
      DATASPACE  SCALAR
   }
   ATTRIBUTE "data" {
      DATATYPE  H5T_STRING {
         STRSIZE 5;
         STRPAD H5T_STR_NULLTERM;
         CSET H5T_CSET_ASCII;
         CTYPE H5T_C_S1;
      }
      DATASPACE  SCALAR
   }
   ATTRIBUTE "pcn_format" {
      DATATYPE  H5T_STRING {
         STRSIZE 16;
         STRPAD H5T_STR_NULLTERM;
         CSET H5T_CSET_ASCII;
         CTYPE H5T_C_S1;
      }
      DATASPACE  SCALAR
   }
   ATTRIBUTE "split" {
      DATATYPE  H5T_STRING {
         STRSIZE 6;
         STRPAD H5T_STR_NULLTERM;
         CSET H5T_CSET_ASCII;
         CTYPE H5T_C_S1;
      }
      DATASPACE  SCALAR
   }
   DATASET "pred" {
      DATATYPE  H5T_STD_I32LE
      DATASPACE  SIMPLE { ( 64 ) / ( 64 ) }
   }
   DATASET "yhat" {
      DATATYPE  H5T_IEEE_F32LE
      DATASPACE  SIMPLE { ( 64, 4 ) / ( 64, 4 ) }
   }
}
}
EOF
  for a in pcn_format:pcn-predictions checkpoint:C.h5 data:d.h5 split:train; do
    h5dump -a "/${a%%:*}" P.h5 | grep -q "\"${a#*:}\"" || bad "predict: attribute ${a%%:*} is not ${a#*:}"
  done
  # pred = argmax yhat; the accuracy of pred on the train labels (i % 4) = pcn_dist test's
  h5dump -d /yhat -y -w 0 -o "$log/yhat.txt" P.h5 > /dev/null &&
    h5dump -d /pred -y -w 0 -o "$log/pred.txt" P.h5 > /dev/null || bad "predict: h5dump -d"
  python3 - "$log/yhat.txt" "$log/pred.txt" "$log/test_train.out" << 'EOF' || bad "predict: values"
import json, re, sys
nums = lambda p: [float(x) for x in re.findall(r"[-+0-9.eE]+|nan|inf", open(p).read())]
yhat, pred = nums(sys.argv[1]), [int(v) for v in nums(sys.argv[2])]
if len(yhat) != 64 * 4 or len(pred) != 64: sys.exit("sizes %d %d" % (len(yhat), len(pred)))
for i in range(64):
    row = yhat[4 * i:4 * i + 4]
    if pred[i] != row.index(max(row)): sys.exit("row %d: pred %d, yhat %s" % (i, pred[i], row))
acc = sum(pred[i] == i % 4 for i in range(64)) / 64
want = json.loads(open(sys.argv[3]).read().splitlines()[-1])["accuracy"]
if abs(acc - want) > 1e-6: sys.exit("accuracy of pred %.6f, pcn_dist test says %.6f" % (acc, want))
print("     P.h5: pred = argmax yhat, accuracy %.4f as pcn_dist test" % acc)
EOF
  [ "$failures" -eq 0 ] && say "PASS normal_disk: metrics and predictions as before"
  ;;
*)
  say "unknown case '$case_name'"; exit 2 ;;
esac

say "$case_name: $runs runs, $failures failures"
[ "$failures" -eq 0 ]

#!/bin/sh
# The virtual-time farm's runs for bench/README.md: efficiency against nodes for each cost
# distribution (100,000 frames), then job size at 1,000 nodes. Writes bench/out/sim.txt (the
# table) and bench/out/sim.dat (for bench/sim/sim.gp). Usage: bench/sim/run.sh [SIM-BINARY]
set -eu
sim=${1:-build/drender-sim}
mkdir -p bench/out
out=bench/out/sim.txt
"$sim" --header --nodes 10 --frames 1000 | head -1 > "$out"
for dist in lognormal bimodal heavy-end; do
	for nodes in 10 100 1000 10000; do
		"$sim" --dist "$dist" --nodes "$nodes" --frames 100000 >> "$out"
	done
done
for nodes in 10 100 1000 10000; do
	"$sim" --dist lognormal --nodes "$nodes" --frames 100000 --slow 0.05 >> "$out"
	"$sim" --dist lognormal --nodes "$nodes" --frames 100000 --no-tail >> "$out"
done
# the spread over seeds where the targets are close
for seed in 2 3 4; do
	for dist in lognormal bimodal; do
		"$sim" --dist "$dist" --nodes 1000 --frames 100000 --seed "$seed" >> "$out"
	done
	"$sim" --dist lognormal --nodes 1000 --frames 100000 --slow 0.05 --seed "$seed" >> "$out"
done
for frames in 1000 10000 1000000; do
	"$sim" --dist lognormal --nodes 1000 --frames "$frames" >> "$out"
done
"$sim" --dist bimodal --nodes 1000 --frames 100000 --slow 0.05 --loss 0.02 --fail 0.01 \
	--straggle 0.01 >> "$out"
# nodes, then efficiency per distribution (lognormal, bimodal, heavy-end, 5% slow, no tail)
awk 'NR > 1 && $3 == 100000 && $5 == 0 && $6 == 0 && $17 == 1 { k = $1 ($4 == "off" ? "-notail" : "");
	e[$2, k] = $9; n[$2] = 1 }
     NR > 1 && $3 == 100000 && $5 > 0 && $6 == 0 && $17 == 1 { e[$2, "slow"] = $9 }
     END { for (x in n) print x, e[x, "lognormal"], e[x, "bimodal"], e[x, "heavy-end"],
	e[x, "slow"], e[x, "lognormal-notail"] }' "$out" | sort -n > bench/out/sim.dat
cat "$out"

# Efficiency of the real scheduler in the virtual-time farm against render nodes, 100,000 frames.
# Usage: gnuplot -e "datafile='bench/out/sim.dat'; outfile='bench/sim.png'" bench/sim/sim.gp
if (!exists("datafile")) datafile = 'bench/out/sim.dat'
if (!exists("outfile")) outfile = 'bench/sim.png'
set terminal pngcairo size 800,500 font ",11"
set output outfile
set title "drender scheduler in virtual time, 100,000 frames, mean 10 s (bench/sim/run.sh)"
set xlabel "render nodes"
set ylabel "efficiency = lower bound / makespan"
set logscale x 10
set xrange [7:14000]
set yrange [0.6:1.01]
set grid
set key bottom left
set arrow from 7,0.98 to 14000,0.98 nohead dashtype 2 lc rgb "#888888"
set arrow from 7,0.95 to 14000,0.95 nohead dashtype 3 lc rgb "#888888"
plot datafile using 1:2 with linespoints lw 2 pt 7 title "lognormal", \
     datafile using 1:3 with linespoints lw 2 pt 5 title "bimodal (heavy middle)", \
     datafile using 1:4 with linespoints lw 2 pt 9 title "heavy last stretch", \
     datafile using 1:5 with linespoints lw 2 pt 11 title "lognormal, 5% nodes 2-3x slower", \
     datafile using 1:6 with linespoints lw 1 pt 1 dashtype 2 title "lognormal, tail control off"

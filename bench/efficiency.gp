# Parallel efficiency of drender's scheduler against render nodes (bench/run.sh writes the data).
# Usage: gnuplot -e "datafile='bench/out/efficiency.dat'; outfile='bench/out/efficiency.png'" bench/efficiency.gp
if (!exists("datafile")) datafile = 'bench/out/efficiency.dat'
if (!exists("outfile")) outfile = 'bench/out/efficiency.png'
set terminal pngcairo size 800,500 font ",11"
set output outfile
set title "drender scheduler on the fake Blender, heavy-tailed frame costs (bench/run.sh)"
set xlabel "render nodes"
set ylabel "efficiency = lower bound / wall"
set logscale x 2
set xtics (4, 8, 16, 32, 64)
set xrange [3:80]
set yrange [0:1.05]
set grid
set key bottom left
set arrow from 3,0.97 to 80,0.97 nohead dashtype 2 lc rgb "#888888"
set label "target 0.97" at 3.3,0.99 tc rgb "#666666"
plot datafile using 1:3 with linespoints lw 2 pt 7 title "against the bound for the nodes' actual start times", \
     datafile using 1:2 with linespoints lw 2 pt 5 title "against max(total cost / nodes, largest frame)"

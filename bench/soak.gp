# Soak run of drender --serve (bench/soak.sh writes the data: one line per 10 s window).
# Usage: gnuplot -e "datafile='bench/out/soak.dat'; outfile='bench/out/soak.png'" bench/soak.gp
if (!exists("datafile")) datafile = 'bench/out/soak.dat'
if (!exists("outfile")) outfile = 'bench/out/soak.png'
set terminal pngcairo size 900,800 font ",11"
set output outfile
set multiplot layout 3,1 title "drender --serve soak: wrk + submissions (valid, hostile) + cancels, fake Blender (bench/soak.sh)"
set grid
set key bottom right opaque box
set xlabel "seconds"
set lmargin 10
set rmargin 10

set ylabel "rank 0 RSS (MB)"
set yrange [0:*]
set y2label "jobs in the table"
set y2range [0:*]
set y2tics
plot datafile using 1:2 with linespoints lw 2 pt 7 ps 0.6 title "rank 0 RSS", \
     datafile using 1:8 axes x1y2 with lines lw 1 dashtype 2 title "rows in jobs.db (--keep-jobs)"

unset y2label
unset y2tics
set ylabel "rank 0 CPU (% of a core)"
set yrange [0:*]
plot datafile using 1:3 with linespoints lw 2 pt 5 ps 0.6 title "utime+stime per 10 s"

set ylabel "/health latency (ms, log)"
set logscale y
set key top right
set yrange [0.2:1000]
set arrow from graph 0, first 50 to graph 1, first 50 nohead dashtype 2 lc rgb "#cc0000"
set label "limit 50 ms" at graph 0.01, first 65 tc rgb "#cc0000"
plot datafile using 1:7 with lines lw 1 lc rgb "#bbbbbb" title "max per 10 s", \
     datafile using 1:6 with linespoints lw 2 pt 7 ps 0.6 title "p99 per 10 s", \
     datafile using 1:5 with linespoints lw 2 pt 5 ps 0.6 title "p50 per 10 s"
unset multiplot

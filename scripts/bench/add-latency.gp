# ADD latency against attachments already on the node, per tool.
#   gnuplot -e "data='add-latency.dat'; out='add-latency.png'; floor=1.2; ipt=5.0" add-latency.gp
# Data columns: 1 x index, 2 attachments label, then per tool (median, min, p95) in ms:
#   3-5 podsteer mark, 6-8 podsteer source (both: node with a /32 route per pod),
#   9-11 podsteer mark on a node without per-pod routes, 12-14 portmap snat.
# floor / ipt: medians of /bin/true and of Istio's iptables-restore path (ms); those do not
# depend on the node's attachments, so they are drawn as lines.
set terminal pngcairo size 960,600 enhanced font "DejaVu Sans,11"
set output out
set title "CNI ADD latency vs attachments already on the node (median, bars: min to p95)"
set xlabel "attachments already on the node"
set ylabel "ADD wall time, ms (log scale)"
set logscale y
set grid ytics mytics xtics
set key top left box opaque
set xrange [-0.4:*]
set offsets 0, 0.4, 0, 0
set yrange [0.3:*]
plot data using 1:3:4:5:xtic(2) with yerrorlines lw 2 pt 7 title "podsteer full ADD, match mark (node: /32 route per pod)", \
     data using 1:6:7:8 with yerrorlines lw 2 pt 5 title "podsteer full ADD, match source (node: /32 route per pod)", \
     data using 1:9:10:11 with yerrorlines lw 2 pt 6 dt 4 title "podsteer full ADD, match mark (node: no per-pod routes)", \
     data using 1:12:13:14 with yerrorlines lw 2 pt 9 title "portmap snat:true ADD (Debian 1.1.1, iptables-nft)", \
     ipt with lines dt 2 lw 2 lc rgb "#aa5500" title sprintf("Istio capture: ip netns exec + iptables-restore (%.1f ms)", ipt), \
     floor with lines dt 3 lw 2 lc rgb "#444444" title sprintf("/bin/true floor (%.1f ms)", floor)

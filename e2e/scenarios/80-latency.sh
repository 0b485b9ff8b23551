# shellcheck shell=bash
# How long from `kubectl patch` of a RealServer's weight to the new weight in
# the director's kernel table. A poller inside the director's namespace reads
# the kernel's IPVS table (/proc/net/ip_vs, the listing ipvsadm -Ln also
# shows) and returns as soon as the weight is there; the time runs on the host
# from just before kubectl starts to the poller's answer, so it includes
# kubectl's own start-up and one command-channel round trip. A figure, not an
# assertion; each change must arrive within 30 s.
scenario latency sc_latency
LATENCY_CHANGES=${LATENCY_CHANGES:-10}
sc_latency() {
  sc_reset
  local d i w t0 t1 hex lat=() sorted
  d=$(lab_node dir1)
  sc_up_nat
  hex=$(printf '%02X%02X%02X%02X:0050' ${NAT_RS_ADDRS[0]//./ })
  for ((i = 0; i < LATENCY_CHANGES; i++)); do
    w=$((i + 2))
    # The poller starts before the change and reports when the weight is in.
    in_node "$d" sh -c '
      end=$(( $(date +%s) + 30 ))
      while ! grep -q -E "^  -> $1 +[A-Za-z]+ +$2 " /proc/net/ip_vs; do
        [ "$(date +%s)" -lt "$end" ] || exit 1
        sleep 0.02
      done' poll "$hex" "$w" &
    local poller=$!
    sleep 0.5
    t0=$(sc_now_ms)
    k patch "$RS_GROUP" web-nat-1 -n default --type merge -p "{\"spec\":{\"weight\":$w}}" >/dev/null ||
      sc_fail "kubectl patch of web-nat-1 weight $w failed"
    wait "$poller" || sc_fail "weight $w of ${NAT_RS_ADDRS[0]} not in $d's kernel within 30 s: $(in_node "$d" ipvsadm -Ln -t "$VIP_NAT:8080" | tr '\n' ';')"
    t1=$(sc_now_ms)
    lat+=($((t1 - t0)))
    echo "change $((i + 1)): weight $w in the kernel after $((t1 - t0)) ms"
  done
  mapfile -t sorted < <(printf "%s\n" "${lat[@]}" | sort -n)
  local n=${#sorted[@]}
  sc_info "apply->kernel latency: p50=$(sc_ms "${sorted[$(((n - 1) / 2))]}") min=$(sc_ms "${sorted[0]}") max=$(sc_ms "${sorted[$((n - 1))]}") over $n changes ($(lab_name) lab; kubectl patch of a RealServer weight until the director's kernel shows it)"
  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}
sc_ms() { printf '%d.%03ds' $(($1 / 1000)) $(($1 % 1000)); }

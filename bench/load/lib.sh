# Sourced by the bench/load scripts.

# Prints the path of the load_tools helper (bench/load/tools.rs: seed, warm,
# bare route), building it with `cargo bench --no-run` if needed; fails with
# a message if it was not built.
load_tools_bin() {
  local bin
  bin=$(cargo bench --bench load_tools --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "load_tools" and .executable != null) | .executable' | tail -n 1)
  [ -x "$bin" ] || { echo "load_tools was not built" >&2; return 1; }
  printf '%s\n' "$bin"
}

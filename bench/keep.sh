# Sourced by the bench scripts: a result file the repository tracks is never replaced unless asked.
#   keep_results FILE...   stops the script (exit 2) if one exists, unless FORCE=1
keep_results() {
    [ "${FORCE:-0}" = 1 ] && return 0
    for file in "$@"; do
        if [ -e "$file" ]; then
            echo "$0: $file holds a result already (FORCE=1 replaces it)" >&2
            exit 2
        fi
    done
}

#!/bin/sh
# Run by `make venv`: makes `source .venv/bin/activate` the one line that readies a shell for `fast-scnn`,
# `ros2 run` and `ros2 launch`. Besides PATH, ros2 needs AMENT_PREFIX_PATH to name the prefix whose ament index
# (share/ament_index/) lists our packages: the venv, where `make venv` installs them. This adds to the venv's
# activate script (bash and zsh) the export of AMENT_PREFIX_PATH, prepended to any value already there (a
# sourced ROS underlay's), and to its `deactivate` the restoring of the previous value. Once per venv: the
# marker line keeps a later `make venv` from adding it again.
# Usage: sh requirements/activate_ament.sh VENV
set -eu
activate="$1/bin/activate"
marker="# fast-scnn-ros: AMENT_PREFIX_PATH"
grep -qF "$marker" "$activate" && exit 0
# deactivate () { ... } restores the previous value first (an unset one stays unset).
sed -i '/^deactivate () {$/r /dev/stdin' "$activate" <<'EOF'
    if [ -n "${_OLD_AMENT_PREFIX_PATH+set}" ] ; then
        if [ -n "$_OLD_AMENT_PREFIX_PATH" ] ; then
            AMENT_PREFIX_PATH="$_OLD_AMENT_PREFIX_PATH"
            export AMENT_PREFIX_PATH
        else
            unset AMENT_PREFIX_PATH
        fi
        unset _OLD_AMENT_PREFIX_PATH
    fi
EOF
grep -q '_OLD_AMENT_PREFIX_PATH' "$activate" || { echo "$activate: no 'deactivate () {' line to extend" >&2; exit 1; }
cat >>"$activate" <<'EOF'

# fast-scnn-ros: AMENT_PREFIX_PATH (added by `make venv`): ros2 run and ros2 launch find the packages
# installed in this venv; deactivate restores the previous value.
_OLD_AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-}"
AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export AMENT_PREFIX_PATH
EOF

#!/bin/bash
# agent.sh [OPTIONS] HOST COMMAND...: a stand-in for ssh that Open MPI's rsh launcher calls
# (--mca plm_rsh_agent) to start its daemon on HOST. It runs the command here, in a private
# UTS namespace whose host name is HOST (unshare --uts: root), so each fake node has its
# own node name, node-local ranks and shared-memory segments. Options (ssh's -x and the
# like) are ignored.
while [ "${1#-}" != "$1" ]; do shift; done
host=${1:?usage: agent.sh [OPTIONS] HOST COMMAND...}
shift
exec unshare --uts /bin/sh -c 'hostname "$1" && shift && exec /bin/sh -c "$*"' sh "$host" "$@"

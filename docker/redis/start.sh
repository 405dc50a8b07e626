#!/bin/sh
# Starts one of Spool's Redis servers or Sentinels (docker/compose.yml), from a copy of this
# folder's configuration kept in its data volume, where Redis and Sentinel may rewrite it:
#
#   sh start.sh server   [redis-server options...]
#   sh start.sh sentinel [redis-server options...]
#
# Environment:
#   REDIS_PASSWORD           the primary's password (required); written into the copy at each
#                            start, so a new one takes effect when the container restarts
#   SPOOL_REDIS_REPLICA_OF   "host port": a server's first role, replica of that one (later the
#                            Sentinels decide, and their choice is kept in the copy)
#   SPOOL_REDIS_MASTER       "address port": the primary a Sentinel watches from its first
#                            start (required for a Sentinel)
#   SPOOL_REDIS_DIR          where the copy and the data live (default /var/lib/redis)
set -eu
umask 077  # the copies hold the password
role=${1:?usage: start.sh server|sentinel [redis-server options...]}
shift
here=$(dirname "$0")
dir=${SPOOL_REDIS_DIR:-/var/lib/redis}
: "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
case "$role" in
    server)
        conf=$dir/redis.conf
        if [ ! -f "$conf" ]; then
            cp "$here/redis.conf" "$conf"
            echo "dir $dir" >> "$conf"
            if [ -n "${SPOOL_REDIS_REPLICA_OF:-}" ]; then
                echo "replicaof $SPOOL_REDIS_REPLICA_OF" >> "$conf"
            fi
        fi
        # Both: after a failover the other server is the primary this one replicates.
        sed -i '/^requirepass /d; /^masterauth /d' "$conf"
        printf 'requirepass "%s"\nmasterauth "%s"\n' "$REDIS_PASSWORD" "$REDIS_PASSWORD" >> "$conf"
        exec redis-server "$conf" "$@"
        ;;
    sentinel)
        conf=$dir/sentinel.conf
        if [ ! -f "$conf" ]; then
            sed "s/MASTER_ADDRESS/${SPOOL_REDIS_MASTER:?set SPOOL_REDIS_MASTER}/" "$here/sentinel.conf" > "$conf"
            echo "dir $dir" >> "$conf"
        fi
        sed -i '/^sentinel auth-pass /d' "$conf"
        printf 'sentinel auth-pass spool "%s"\n' "$REDIS_PASSWORD" >> "$conf"
        exec redis-server "$conf" --sentinel "$@"
        ;;
    *)
        echo "start.sh: unknown role $role (server or sentinel)" >&2
        exit 2
        ;;
esac

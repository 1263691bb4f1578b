# Shell functions for private, throwaway PostgreSQL 15 clusters.
#
# Sourced by tests/with-pg and scripts/demo (POSIX sh, so both sh and bash can
# use it), and called by tests/lib/linbat.py so that the initdb and pg_ctl
# flags live in one place. Nothing here touches Debian's own cluster.
#
# Functions:
#   pg_free_port               print a free loopback TCP port
#   pg_mkdir                   make a temp dir the server user can write, print it
#   pg_init DIR                initdb DIR/data (user postgres, trust, UTF8, C.UTF-8)
#   pg_start DIR PORT          start the server on 127.0.0.1:PORT, socket in DIR
#   pg_stop DIR                stop it (fast); no error if it is not running
#   pg_running DIR             true if the server of DIR/data is running
#   pg_destroy DIR             stop it and remove DIR
#   pg_export DIR PORT         export LINBAT_TEST_* and PG* for clients
#
# Layout of DIR: data/ (the cluster), pg.log (server log), the unix socket.

: "${LINBAT_TEST_PGBIN:=/usr/lib/postgresql/15/bin}"
: "${LINBAT_PYTHON:=/usr/bin/python3}"

# The command prefix that runs initdb and pg_ctl: initdb refuses root, so root
# runs them as the postgres user; anyone else runs them as themselves.
if [ "$(id -u)" -eq 0 ]; then
	LINBAT_TEST_PGRUN="runuser -u postgres --"
else
	LINBAT_TEST_PGRUN=""
fi

# Say what went wrong on stderr and fail.
pg_die() {
	echo "pg.sh: $*" >&2
	return 1
}

# Run a server program as the right user, from DIR so it never needs to read
# the caller's current directory (root's may be closed to postgres).
pg_run() {
	pg_run_dir=$1
	shift
	(cd "$pg_run_dir" && $LINBAT_TEST_PGRUN "$@")
}

# Print a free TCP port on 127.0.0.1: bind port 0 and read back what the kernel chose.
pg_free_port() {
	"$LINBAT_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Make a fresh temp dir, short enough for a unix socket path, owned by the
# user that runs the server.
pg_mkdir() {
	[ -x "$LINBAT_TEST_PGBIN/initdb" ] ||
		pg_die "$LINBAT_TEST_PGBIN/initdb not found; run scripts/bootstrap" || return 1
	pg_mkdir_d=$(mktemp -d "${TMPDIR:-/tmp}/linbat-pg.XXXXXX") || return 1
	if [ -n "$LINBAT_TEST_PGRUN" ]; then
		getent passwd postgres >/dev/null ||
			pg_die "user postgres is missing; run scripts/bootstrap" || return 1
		chown postgres: "$pg_mkdir_d" || return 1
	fi
	echo "$pg_mkdir_d"
}

# Create the cluster in DIR/data: trust auth, no fsync, quiet.
pg_init() {
	pg_run "$1" "$LINBAT_TEST_PGBIN/initdb" -D "$1/data" -U postgres -A trust \
		-E UTF8 --locale=C.UTF-8 --no-sync >"$1/initdb.log" 2>&1 || {
		cat "$1/initdb.log" >&2
		pg_die "initdb failed in $1"
	}
}

# Start the cluster of DIR on 127.0.0.1:PORT and wait until it accepts connections.
pg_start() {
	pg_run "$1" "$LINBAT_TEST_PGBIN/pg_ctl" -D "$1/data" -l "$1/pg.log" -w -t 30 \
		-o "-p $2 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$1 -c fsync=off" \
		start >/dev/null || {
		tail -n 20 "$1/pg.log" >&2
		pg_die "could not start PostgreSQL on 127.0.0.1:$2 (log: $1/pg.log)"
	}
}

# True if the server of DIR is running.
pg_running() {
	[ -f "$1/data/postmaster.pid" ] &&
		pg_run "$1" "$LINBAT_TEST_PGBIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

# Stop the server of DIR (fast shutdown: disconnect clients, no waiting for them).
pg_stop() {
	pg_running "$1" || return 0
	pg_run "$1" "$LINBAT_TEST_PGBIN/pg_ctl" -D "$1/data" -m fast -w -t 30 stop >/dev/null
}

# Stop the server of DIR and remove DIR and everything in it. The data is
# thrown away, so the shutdown checkpoint of a fast stop (tens of seconds on
# a loaded machine after a suite's many databases) is skipped: immediate.
pg_destroy() {
	[ -n "$1" ] && [ -d "$1" ] || return 0
	if pg_running "$1"; then
		pg_run "$1" "$LINBAT_TEST_PGBIN/pg_ctl" -D "$1/data" -m immediate -w -t 20 \
			stop >/dev/null 2>&1 || pg_kill "$1"
	fi
	rm -rf "$1"
}

# Kill the server of DIR and its processes outright: the last resort when an
# immediate shutdown has not finished in time (seen on a machine at load 15).
pg_kill() {
	pg_kill_pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null) || return 0
	[ -n "$pg_kill_pid" ] || return 0
	pkill -KILL -P "$pg_kill_pid" 2>/dev/null
	kill -KILL "$pg_kill_pid" 2>/dev/null
	return 0
}

# Export the variables the tests read to reach the cluster of DIR on PORT.
pg_export() {
	LINBAT_TEST_DSN="host=127.0.0.1 port=$2 user=postgres dbname=postgres"
	LINBAT_TEST_PGDATA="$1/data"
	PGHOST=127.0.0.1
	PGPORT=$2
	PGUSER=postgres
	export LINBAT_TEST_DSN LINBAT_TEST_PGDATA LINBAT_TEST_PGBIN LINBAT_TEST_PGRUN \
		PGHOST PGPORT PGUSER
}

# Make, init and start a cluster in DIR; retry on a fresh port if another
# process took ours between pg_free_port and the server's bind. Prints the port.
pg_setup() {
	pg_init "$1" || return 1
	for _ in 1 2 3; do
		pg_setup_port=$(pg_free_port) || return 1
		if pg_start "$1" "$pg_setup_port" 2>"$1/start.err"; then
			echo "$pg_setup_port"
			return 0
		fi
	done
	cat "$1/start.err" >&2
	return 1
}

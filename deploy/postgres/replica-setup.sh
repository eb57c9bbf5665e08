#!/usr/bin/env bash
# replica-setup.sh — seed a PostgreSQL streaming replica (PostgreSQL 13+) from a
# primary, with a physical replication slot and scram-sha-256 authentication.
#
# Run it on the replica host as the OS user that runs PostgreSQL (postgres).
# It does not start the server: it prints how to, once the data is in place.
# See usage() below, or run with --help.

set -Eeuo pipefail
umask 077

readonly PROG=${0##*/}

# Exit codes (documented in --help and deploy/postgres/README.md).
readonly EX_OK=0
readonly EX_INTERNAL=1
readonly EX_USAGE=2
readonly EX_TOOLS=3
readonly EX_UNREACHABLE=4
readonly EX_AUTH=5
readonly EX_UNSUPPORTED=6
readonly EX_DATADIR=7
readonly EX_SLOT=8
readonly EX_BASEBACKUP=9
readonly EX_VERIFY=10
readonly EX_ABORTED=11

usage() {
  cat <<EOF
Usage: $PROG [options] <primary_host> [port] [replication_user]

Seeds an empty data directory as a streaming replica of <primary_host>:
pre-flight checks, replication role and physical slot (idempotent),
pg_basebackup -X stream -R -S <slot> --checkpoint=fast, then verification.

Arguments:
  primary_host       host name or address of the primary
  port               primary's port                     (default: 5432)
  replication_user   role used for replication          (default: replicator)

Options:
  --create-user  create the replication role on the primary if missing
                 (LOGIN REPLICATION only, password from PGPASSWORD) through an
                 admin connection (PRIMARY_ADMIN_USER, PRIMARY_ADMIN_PASSWORD)
  --yes          do not ask for confirmation (needed without a terminal)
  --force        empty a non-empty data directory first (never one whose
                 server is running)
  --dry-run      run the pre-flight checks, print the plan, change nothing
  -h, --help     show this help

Environment:
  PGPASSWORD / PGPASSFILE   replication user's password (never pass it as an
                            argument: arguments are visible in ps). With
                            PGPASSWORD, it is written to REPLICA_PASSFILE and
                            primary_conninfo names that file; with PGPASSFILE,
                            primary_conninfo names PGPASSFILE. The password
                            itself is never written into primary_conninfo.
  REPLICA_PASSFILE          passfile the replica reads the password from
                            (default: <REPLICA_DATA_DIR>.pgpass, mode 600)
  REPLICA_DATA_DIR          data directory to create (required)
  REPLICA_SLOT_NAME         physical slot name (default: short host name,
                            lower-cased, other characters as "_")
  REPLICA_APPLICATION_NAME  application_name the replica reports, as used by
                            synchronous_standby_names (default: slot name)
  REPLICA_LOG_FILE          also append this script's log to this file
  PRIMARY_ADMIN_USER        superuser for --create-user (default: postgres)
  PRIMARY_ADMIN_DB          database for that connection (default: postgres)
  PRIMARY_ADMIN_PASSWORD    its password (else PGPASSFILE / ~/.pgpass)
  PG_BINDIR                 PostgreSQL client binaries to use (default:
                            pg_config --bindir, else the newest
                            /usr/lib/postgresql/<ver>/bin, else PATH)
  REPLICA_MIN_SERVER_VERSION  lowest accepted server_version_num
                            (default: 130000)
  PGSSLMODE / PGSSLROOTCERT libpq's TLS settings, used by every connection
                            and written into primary_conninfo by
                            pg_basebackup -R: verify-full and the CA file
                            make the replica verify the primary (CA and host
                            name); libpq's default, prefer, checks nothing

Exit codes:
  0  success (with --dry-run: checks passed, nothing changed)
  1  internal error
  2  usage error (bad arguments or environment)
  3  client tools missing or older than the server
  4  primary unreachable
  5  authentication or authorization failed (password, pg_hba.conf, role
     without REPLICATION)
  6  primary unsupported (server version, wal_level, max_wal_senders)
  7  data directory not empty (use --force) or not usable
  8  replication role or slot could not be created (e.g. no free slot, slot
     in use by another replica)
  9  pg_basebackup failed
  10 verification of the new data directory failed
  11 aborted at the confirmation prompt
On any failure the script undoes what it did in this run: it removes the data
it wrote, and drops the slot and role it created.
EOF
}

# --- logging -----------------------------------------------------------------

LOG_FILE=${REPLICA_LOG_FILE:-}

log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $PROG: $*"
  printf '%s\n' "$line" >&2
  if [[ -n $LOG_FILE ]]; then printf '%s\n' "$line" >>"$LOG_FILE" || true; fi
}

die() {
  local code=$1
  shift
  log "error: $*"
  exit "$code"
}

# --- arguments ---------------------------------------------------------------

CREATE_USER=0
ASSUME_YES=0
FORCE=0
DRY_RUN=0
POSITIONAL=()

while (($#)); do
  case $1 in
    --create-user) CREATE_USER=1 ;;
    --yes | -y) ASSUME_YES=1 ;;
    --force) FORCE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      usage
      exit "$EX_OK"
      ;;
    --) shift; POSITIONAL+=("$@"); break ;;
    -*) usage >&2; die "$EX_USAGE" "unknown option: $1" ;;
    *) POSITIONAL+=("$1") ;;
  esac
  shift
done

if ((${#POSITIONAL[@]} < 1 || ${#POSITIONAL[@]} > 3)); then
  usage >&2
  die "$EX_USAGE" "expected <primary_host> [port] [replication_user], got ${#POSITIONAL[@]} argument(s)"
fi

PRIMARY_HOST=${POSITIONAL[0]}
PRIMARY_PORT=${POSITIONAL[1]:-5432}
REPL_USER=${POSITIONAL[2]:-replicator}
DATA_DIR=${REPLICA_DATA_DIR:-}
ADMIN_USER=${PRIMARY_ADMIN_USER:-postgres}
ADMIN_DB=${PRIMARY_ADMIN_DB:-postgres}
MIN_SERVER_VERSION=${REPLICA_MIN_SERVER_VERSION:-130000}

default_slot_name() {
  local name
  name=$(hostname -s 2>/dev/null || echo replica)
  name=${name,,}
  printf '%s' "${name//[^a-z0-9_]/_}"
}
SLOT_NAME=${REPLICA_SLOT_NAME:-$(default_slot_name)}
APP_NAME=${REPLICA_APPLICATION_NAME:-$SLOT_NAME}

if ! [[ $PRIMARY_PORT =~ ^[0-9]+$ ]] || ((PRIMARY_PORT < 1 || PRIMARY_PORT > 65535)); then
  die "$EX_USAGE" "port must be a number from 1 to 65535, got '$PRIMARY_PORT'"
fi
[[ $REPL_USER =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] ||
  die "$EX_USAGE" "replication_user '$REPL_USER' must be a plain identifier (letters, digits, _)"
[[ $SLOT_NAME =~ ^[a-z0-9_]{1,63}$ ]] ||
  die "$EX_USAGE" "REPLICA_SLOT_NAME '$SLOT_NAME' must be 1-63 lower-case letters, digits or _"
[[ $APP_NAME =~ ^[A-Za-z0-9_.-]{1,63}$ ]] ||
  die "$EX_USAGE" "REPLICA_APPLICATION_NAME '$APP_NAME' must be 1-63 letters, digits, _, . or -"
[[ -n $DATA_DIR ]] || die "$EX_USAGE" "set REPLICA_DATA_DIR to the data directory to create, e.g. /var/lib/postgresql/16/main"
[[ $DATA_DIR == /* ]] || die "$EX_USAGE" "REPLICA_DATA_DIR must be an absolute path, got '$DATA_DIR'"
[[ $MIN_SERVER_VERSION =~ ^[0-9]+$ ]] || die "$EX_USAGE" "REPLICA_MIN_SERVER_VERSION must be a number such as 130000"
if ((EUID == 0)); then
  die "$EX_USAGE" "do not run as root: the data directory must belong to the server's OS user (run: sudo -u postgres $PROG ...)"
fi
if ((CREATE_USER)) && [[ -z ${PGPASSWORD:-} ]]; then
  die "$EX_USAGE" "--create-user needs the new role's password in PGPASSWORD"
fi

# --- client tools -------------------------------------------------------------

find_bindir() {
  if [[ -n ${PG_BINDIR:-} ]]; then
    printf '%s' "$PG_BINDIR"
  elif command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/pg_basebackup" ]]; then
    pg_config --bindir
  else
    local newest=''
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
      [[ -x $dir/pg_basebackup ]] || continue
      if [[ -z $newest ]] || ((${dir//[^0-9]/} > ${newest//[^0-9]/})); then newest=$dir; fi
    done
    printf '%s' "$newest"
  fi
}

BINDIR=$(find_bindir)
tool() {
  if [[ -n $BINDIR && -x $BINDIR/$1 ]]; then
    printf '%s' "$BINDIR/$1"
  elif command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  else
    return 1
  fi
}
PSQL=$(tool psql) || die "$EX_TOOLS" "psql not found: install the PostgreSQL client (apt-get install postgresql-client) or set PG_BINDIR"
PG_BASEBACKUP=$(tool pg_basebackup) || die "$EX_TOOLS" "pg_basebackup not found: install the PostgreSQL client or set PG_BINDIR"
PG_ISREADY=$(tool pg_isready) || die "$EX_TOOLS" "pg_isready not found: install the PostgreSQL client or set PG_BINDIR"
PG_VERIFYBACKUP=$(tool pg_verifybackup) || PG_VERIFYBACKUP=''

CLIENT_MAJOR=$("$PG_BASEBACKUP" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
[[ $CLIENT_MAJOR =~ ^[0-9]+$ ]] || die "$EX_TOOLS" "cannot read the version of $PG_BASEBACKUP"

# --- connections ----------------------------------------------------------------

# Connection strings carry no password: libpq takes it from PGPASSWORD or the
# passfile, so it never shows up in ps.
REPL_CONNINFO="host=$PRIMARY_HOST port=$PRIMARY_PORT user=$REPL_USER connect_timeout=10"
ADMIN_CONNINFO="host=$PRIMARY_HOST port=$PRIMARY_PORT user=$ADMIN_USER dbname=$ADMIN_DB connect_timeout=10 application_name=pgreplica-setup"

# psql's error output of the last failed repl_sql/admin_sql call (a file,
# because those run in command substitutions, whose variables do not survive).
ERR_FILE=$(mktemp)
last_error() {
  tr '\n' ' ' <"$ERR_FILE"
}

# repl_sql SQL... — runs replication-protocol commands, prints tuples.
repl_sql() {
  local args=() stmt
  for stmt in "$@"; do args+=(-c "$stmt"); done
  "$PSQL" "$REPL_CONNINFO dbname=replication replication=true application_name=pgreplica-setup" \
    -XAtq -v ON_ERROR_STOP=1 "${args[@]}" 2>"$ERR_FILE"
}

# admin_sql [psql args] — runs SQL (-c or stdin) as the admin user. The
# replication password never reaches the command line; the session turns
# statement logging off so it does not reach the server log either.
admin_sql() {
  env -u PGPASSWORD ${PRIMARY_ADMIN_PASSWORD:+PGPASSWORD="$PRIMARY_ADMIN_PASSWORD"} \
    "$PSQL" "$ADMIN_CONNINFO" -XAtq -v ON_ERROR_STOP=1 "$@" 2>"$ERR_FILE"
}

# psql_quote TEXT — TEXT escaped for a single-quoted psql meta-command argument.
psql_quote() {
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g"
}

auth_failure() {
  [[ $1 == *"password authentication failed"* || $1 == *"no pg_hba.conf entry"* ||
    $1 == *"must have replication"* || $1 == *"permission denied"* ||
    $1 == *"no password supplied"* || $1 == *"is not permitted to log in"* ||
    $1 == *"role \""*"\" does not exist"* || $1 == *"SCRAM"* ]]
}

# --- rollback -------------------------------------------------------------------

DATA_DIR_CREATED=0
DATA_WRITTEN=0
PASSFILE=''
PASSFILE_CREATED=0
SLOT_CREATED=0
ROLE_CREATED=0
FINISHED=0

# Invoked by the EXIT trap.
# shellcheck disable=SC2317
rollback() {
  local status=$?
  rm -f -- "$ERR_FILE"
  ((FINISHED)) && return
  ((status == 0)) && return
  if ((DATA_WRITTEN)); then
    if ((DATA_DIR_CREATED)); then
      rm -rf -- "$DATA_DIR" && log "rolled back: removed $DATA_DIR"
    else
      find "$DATA_DIR" -mindepth 1 -delete && log "rolled back: emptied $DATA_DIR"
    fi
  elif ((DATA_DIR_CREATED)); then
    rmdir -- "$DATA_DIR" 2>/dev/null || true
  fi
  if ((PASSFILE_CREATED)); then
    rm -f -- "$PASSFILE" && log "rolled back: removed $PASSFILE"
  fi
  if ((SLOT_CREATED)); then
    if repl_sql "DROP_REPLICATION_SLOT \"$SLOT_NAME\"" >/dev/null; then
      log "rolled back: dropped slot $SLOT_NAME"
    else
      log "could not drop slot $SLOT_NAME on the primary; drop it by hand: SELECT pg_drop_replication_slot('$SLOT_NAME');"
    fi
  fi
  if ((ROLE_CREATED)); then
    if admin_sql -c "DROP ROLE IF EXISTS \"$REPL_USER\"" >/dev/null; then
      log "rolled back: dropped role $REPL_USER"
    else
      log "could not drop role $REPL_USER on the primary; drop it by hand"
    fi
  fi
}
trap rollback EXIT
trap 'die "$EX_INTERNAL" "unexpected failure at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# --- pre-flight -----------------------------------------------------------------

log "primary $PRIMARY_HOST:$PRIMARY_PORT, user $REPL_USER, slot $SLOT_NAME, data directory $DATA_DIR"
case ${PGSSLMODE:-prefer} in
  verify-full) log "TLS: sslmode=verify-full (CA ${PGSSLROOTCERT:-~/.postgresql/root.crt} and host name checked)" ;;
  verify-ca) log "warning: sslmode=verify-ca checks the CA but not the primary's host name; PGSSLMODE=verify-full checks both" ;;
  *) log "warning: sslmode=${PGSSLMODE:-prefer} does not verify the primary's certificate; set PGSSLMODE=verify-full and PGSSLROOTCERT=<CA file> (pg_basebackup -R writes them into primary_conninfo)" ;;
esac

ready=0
"$PG_ISREADY" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -t 10 >/dev/null 2>&1 || ready=$?
case $ready in
  0) ;;
  1) die "$EX_UNREACHABLE" "primary $PRIMARY_HOST:$PRIMARY_PORT is rejecting connections (starting up or shutting down); retry when it is up" ;;
  *) die "$EX_UNREACHABLE" "primary $PRIMARY_HOST:$PRIMARY_PORT does not answer: check the address, the port, listen_addresses and firewalls" ;;
esac

# check_settings "server_version_num wal_level max_wal_senders max_replication_slots" — one value a line.
check_settings() {
  local values
  mapfile -t values <<<"$1"
  server_version=${values[0]:-0}
  wal_level=${values[1]:-}
  max_wal_senders=${values[2]:-0}
  max_slots=${values[3]:-0}
  server_major=$((server_version / 10000))
  ((server_version >= MIN_SERVER_VERSION)) ||
    die "$EX_UNSUPPORTED" "primary runs server_version_num $server_version; pgreplica needs at least $MIN_SERVER_VERSION (PostgreSQL 13+)"
  [[ $wal_level == replica || $wal_level == logical ]] ||
    die "$EX_UNSUPPORTED" "primary has wal_level = '$wal_level'; set wal_level = replica (deploy/postgres/replication.conf) and restart it"
  ((max_wal_senders > 0)) ||
    die "$EX_UNSUPPORTED" "primary has max_wal_senders = 0; set it to 10 (deploy/postgres/replication.conf) and restart it"
  ((max_slots > 0)) ||
    die "$EX_UNSUPPORTED" "primary has max_replication_slots = 0; set it to 10 (deploy/postgres/replication.conf) and restart it"
  ((CLIENT_MAJOR >= server_major)) ||
    die "$EX_TOOLS" "pg_basebackup $CLIENT_MAJOR is older than the primary ($server_major); install the PostgreSQL $server_major client or set PG_BINDIR"
}

exists=1
if ((CREATE_USER)); then
  # The admin connection can read the settings even when replication
  # connections are impossible (wal_level = minimal forces max_wal_senders = 0).
  settings=$(admin_sql -c "SELECT current_setting('server_version_num')" -c "SELECT current_setting('wal_level')" \
    -c "SELECT current_setting('max_wal_senders')" -c "SELECT current_setting('max_replication_slots')") || {
    if auth_failure "$(last_error)"; then
      die "$EX_AUTH" "admin connection as $ADMIN_USER refused (set PRIMARY_ADMIN_USER / PRIMARY_ADMIN_PASSWORD or PGPASSFILE): $(last_error)"
    fi
    die "$EX_UNREACHABLE" "admin connection to $PRIMARY_HOST:$PRIMARY_PORT failed: $(last_error)"
  }
  check_settings "$settings"
  exists=$(admin_sql -v "role=$REPL_USER" <<<"SELECT count(*) FROM pg_roles WHERE rolname = :'role';") ||
    die "$EX_SLOT" "cannot look up role $REPL_USER: $(last_error)"
  if [[ $exists == 0 ]]; then
    if ((DRY_RUN)); then
      log "dry run: would create role $REPL_USER (LOGIN REPLICATION)"
    else
      # The password goes through stdin in a psql variable, quoted by format(%L).
      admin_sql -v "role=$REPL_USER" >/dev/null <<SQL || die "$EX_SLOT" "cannot create role $REPL_USER: $(last_error)"
SET log_statement = 'none';
SET log_min_duration_statement = -1;
\set pw '$(psql_quote "$PGPASSWORD")'
SELECT format('CREATE ROLE %I WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD %L', :'role', :'pw') \gexec
SQL
      ROLE_CREATED=1
      log "created role $REPL_USER (LOGIN REPLICATION)"
    fi
  else
    log "role $REPL_USER exists; leaving its password and attributes unchanged"
  fi
fi

# The replication connection itself: the password, pg_hba.conf and the
# REPLICATION attribute are all checked here (skipped only in a dry run whose
# role does not exist yet).
if ! { ((DRY_RUN)) && ((CREATE_USER)) && [[ $exists == 0 ]]; }; then
  settings=$(repl_sql 'SHOW server_version_num' 'SHOW wal_level' 'SHOW max_wal_senders' 'SHOW max_replication_slots') || {
    if auth_failure "$(last_error)"; then
      die "$EX_AUTH" "replication connection as $REPL_USER refused: $(last_error) — check the password (PGPASSWORD/PGPASSFILE), the role's REPLICATION attribute and a 'host replication $REPL_USER <cidr> scram-sha-256' line in pg_hba.conf"
    fi
    if [[ $(last_error) == *max_wal_senders* ]]; then
      die "$EX_UNSUPPORTED" "primary accepts no replication connection: $(last_error) — set wal_level = replica and max_wal_senders = 10 (deploy/postgres/replication.conf) and restart it"
    fi
    die "$EX_UNREACHABLE" "replication connection to $PRIMARY_HOST:$PRIMARY_PORT failed: $(last_error)"
  }
  check_settings "$settings"
fi
log "primary: server_version_num $server_version, wal_level $wal_level, max_wal_senders $max_wal_senders, max_replication_slots $max_slots"

if ((CREATE_USER)); then
  slot_state=$(admin_sql -v "slot=$SLOT_NAME" <<<"SELECT (SELECT count(*) FROM pg_replication_slots) || ' ' || coalesce((SELECT active::text FROM pg_replication_slots WHERE slot_name = :'slot'), 'absent');") ||
    die "$EX_SLOT" "cannot read pg_replication_slots: $(last_error)"
  used_slots=${slot_state%% *}
  slot_active=${slot_state##* }
  [[ $slot_active == true ]] &&
    die "$EX_SLOT" "slot $SLOT_NAME is in use by another replica; pick another REPLICA_SLOT_NAME"
  if [[ $slot_active == absent ]] && ((used_slots >= ${max_slots:-0})) && ((max_slots > 0)); then
    die "$EX_SLOT" "no free replication slot on the primary ($used_slots of max_replication_slots = $max_slots in use); drop an unused one or raise max_replication_slots"
  fi
fi

# --- data directory ---------------------------------------------------------------

if [[ -e $DATA_DIR && ! -d $DATA_DIR ]]; then
  die "$EX_DATADIR" "$DATA_DIR exists and is not a directory"
fi
if [[ -d $DATA_DIR ]] && [[ -n $(find "$DATA_DIR" -mindepth 1 -maxdepth 1 -print -quit 2>/dev/null) ]]; then
  if [[ -f $DATA_DIR/postmaster.pid ]]; then
    pid=$(head -n 1 "$DATA_DIR/postmaster.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      die "$EX_DATADIR" "$DATA_DIR holds a running server (pid $pid); stop it first — even --force will not touch it"
    fi
  fi
  ((FORCE)) || die "$EX_DATADIR" "$DATA_DIR is not empty; move it away, or pass --force to delete its contents"
  log "$DATA_DIR is not empty; --force: its contents will be deleted"
fi
if [[ ! -d $DATA_DIR ]]; then
  parent=$(dirname -- "$DATA_DIR")
  [[ -d $parent && -w $parent ]] || die "$EX_DATADIR" "cannot create $DATA_DIR: $parent is missing or not writable by $(id -un)"
elif [[ ! -w $DATA_DIR ]]; then
  die "$EX_DATADIR" "$DATA_DIR is not writable by $(id -un)"
fi

# --- plan and confirmation ----------------------------------------------------------

plan=(
  "create physical slot $SLOT_NAME on the primary (reuse it if it exists)"
  "pg_basebackup -X stream -R -S $SLOT_NAME --checkpoint=fast into $DATA_DIR"
  "set recovery_target_timeline = 'latest' and application_name $APP_NAME"
  "verify the data directory"
)
if ((DRY_RUN)); then
  log "dry run: checks passed; would:"
  for step in "${plan[@]}"; do log "  - $step"; done
  FINISHED=1
  exit "$EX_OK"
fi
if ((!ASSUME_YES)); then
  [[ -t 0 ]] || die "$EX_ABORTED" "no terminal to confirm on; pass --yes to proceed"
  for step in "${plan[@]}"; do printf '  - %s\n' "$step" >&2; done
  read -r -p "Proceed? [y/N] " answer
  [[ $answer == [yY] || $answer == [yY][eE][sS] ]] || die "$EX_ABORTED" "aborted; nothing changed"
fi

# --- slot ---------------------------------------------------------------------------

if repl_sql "CREATE_REPLICATION_SLOT \"$SLOT_NAME\" PHYSICAL RESERVE_WAL" >/dev/null; then
  SLOT_CREATED=1
  log "created physical slot $SLOT_NAME"
elif [[ $(last_error) == *"already exists"* ]]; then
  log "slot $SLOT_NAME exists; reusing it"
elif [[ $(last_error) == *"all replication slots are in use"* ]]; then
  die "$EX_SLOT" "no free replication slot on the primary; drop an unused one or raise max_replication_slots"
else
  die "$EX_SLOT" "cannot create slot $SLOT_NAME: $(last_error)"
fi

# --- passfile and primary_conninfo ---------------------------------------------------

# conn_value VALUE — VALUE quoted for a libpq connection string.
conn_value() {
  local v=${1//\\/\\\\}
  v=${v//\'/\\\'}
  printf "'%s'" "$v"
}

# pgpass_field VALUE — VALUE escaped for a passfile field (\ and :).
pgpass_field() {
  local v=${1//\\/\\\\}
  printf '%s' "${v//:/\\:}"
}

# Where the replica finds its password: a passfile written here from
# PGPASSWORD (any host and port: the worker repoints the replica to another
# primary), else PGPASSFILE as given, else none (~/.pgpass of the server's
# user, or certificate or trust authentication).
write_passfile() {
  if [[ -n ${PGPASSWORD:-} ]]; then
    PASSFILE=${REPLICA_PASSFILE:-${DATA_DIR%/}.pgpass}
    [[ -e $PASSFILE ]] || PASSFILE_CREATED=1
    (umask 077 && printf '*:*:*:%s:%s\n' "$(pgpass_field "$REPL_USER")" "$(pgpass_field "$PGPASSWORD")" >"$PASSFILE")
    chmod 600 "$PASSFILE"
    log "replication password written to $PASSFILE (mode 600); primary_conninfo names it"
  elif [[ -n ${PGPASSFILE:-} ]]; then
    PASSFILE=$PGPASSFILE
  fi
}

# Replaces the primary_conninfo pg_basebackup -R wrote with one holding no
# password: host, port, user, application_name, the passfile and libpq's TLS
# settings from the environment.
write_primary_conninfo() {
  local conf=$DATA_DIR/postgresql.auto.conf info pair
  info="host=$(conn_value "$PRIMARY_HOST") port=$PRIMARY_PORT user=$(conn_value "$REPL_USER") application_name=$(conn_value "$APP_NAME")"
  [[ -n $PASSFILE ]] && info+=" passfile=$(conn_value "$PASSFILE")"
  for pair in sslmode:PGSSLMODE sslrootcert:PGSSLROOTCERT sslcert:PGSSLCERT sslkey:PGSSLKEY sslcrl:PGSSLCRL; do
    local var=${pair#*:}
    [[ -n ${!var:-} ]] && info+=" ${pair%%:*}=$(conn_value "${!var}")"
  done
  grep -v '^primary_conninfo = ' "$conf" >"$conf.new" || true
  printf "primary_conninfo = '%s'\n" "${info//\'/\'\'}" >>"$conf.new"
  mv -- "$conf.new" "$conf"
}

# --- base backup --------------------------------------------------------------------

if [[ -d $DATA_DIR ]]; then
  DATA_WRITTEN=1
  find "$DATA_DIR" -mindepth 1 -delete
else
  mkdir -m 700 -- "$DATA_DIR"
  DATA_DIR_CREATED=1
fi
chmod 700 "$DATA_DIR"

log "running pg_basebackup (checkpoint=fast, WAL streamed)"
DATA_WRITTEN=1
backup_start=$SECONDS
if ! backup_log=$("$PG_BASEBACKUP" -d "$REPL_CONNINFO application_name=$APP_NAME" -D "$DATA_DIR" \
  -X stream -R -S "$SLOT_NAME" --checkpoint=fast --no-password 2>&1); then
  [[ -n $LOG_FILE ]] && printf '%s\n' "$backup_log" >>"$LOG_FILE"
  die "$EX_BASEBACKUP" "pg_basebackup failed: ${backup_log//$'\n'/ }"
fi
log "base backup done in $((SECONDS - backup_start))s"

# PostgreSQL 12+ has no recovery.conf: -R wrote standby.signal and
# primary_conninfo/primary_slot_name into postgresql.auto.conf. Its
# primary_conninfo holds the password when one was given: it is replaced by
# one that names a passfile instead (a password there shows in
# pg_settings, in the server log of any ALTER SYSTEM that rewrites it, and in
# every copy of the data directory). 'latest' is the default since 12;
# written anyway so the replica follows a promoted primary onto its new
# timeline even if a packaged postgresql.conf sets it otherwise.
write_passfile
write_primary_conninfo
printf "recovery_target_timeline = 'latest'\n" >>"$DATA_DIR/postgresql.auto.conf"
chmod 700 "$DATA_DIR"

# --- verification ---------------------------------------------------------------------

[[ -f $DATA_DIR/standby.signal ]] || die "$EX_VERIFY" "standby.signal missing in $DATA_DIR"
[[ -f $DATA_DIR/PG_VERSION ]] || die "$EX_VERIFY" "PG_VERSION missing in $DATA_DIR"
grep -q "^primary_conninfo = " "$DATA_DIR/postgresql.auto.conf" || die "$EX_VERIFY" "primary_conninfo missing in postgresql.auto.conf"
if grep -q "password=" "$DATA_DIR/postgresql.auto.conf"; then die "$EX_VERIFY" "postgresql.auto.conf still holds a password"; fi
grep -q "^primary_slot_name = '$SLOT_NAME'" "$DATA_DIR/postgresql.auto.conf" || die "$EX_VERIFY" "primary_slot_name missing in postgresql.auto.conf"
[[ $(stat -c %a "$DATA_DIR") == 700 ]] || die "$EX_VERIFY" "$DATA_DIR is not mode 700"
if [[ -n $PG_VERIFYBACKUP && -f $DATA_DIR/backup_manifest ]]; then
  verify_log=$("$PG_VERIFYBACKUP" -q "$DATA_DIR" 2>&1) || die "$EX_VERIFY" "pg_verifybackup failed: ${verify_log//$'\n'/ }"
  log "pg_verifybackup: checksums of all files and the WAL needed to start match the manifest"
fi

FINISHED=1
log "replica data directory ready"
cat <<EOF

Next steps
  1. Start the replica (it streams from $PRIMARY_HOST:$PRIMARY_PORT through slot $SLOT_NAME):
       pg_ctl -D '$DATA_DIR' -l '$DATA_DIR/startup.log' start
     or with a packaged service, e.g. systemctl start postgresql@<ver>-<cluster>
  2. Check that it streams and how far behind it is — on the primary:
       SELECT application_name, state, sync_state, replay_lag,
              pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes
         FROM pg_stat_replication;
     on the replica:
       SELECT status, sender_host, latest_end_lsn FROM pg_stat_wal_receiver;
  3. Promote it only when its primary is gone for good (pgreplica promote does
     this with fencing; by hand: SELECT pg_promote(true, 60);)
EOF
exit "$EX_OK"

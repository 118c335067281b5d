#!/usr/bin/env bash
# Builds the two images of compose.yaml's `cluster` profile that are not Tether's own, as
# no image registry can be reached: `tether-postgres` (PostgreSQL) and `tether-haproxy`
# (the load balancer in front of the nodes' HTTPS and MQTTS). Each is laid into a root
# filesystem FROM scratch from the programs Debian's packages installed on this machine
# (`postgresql`, `haproxy`), with the shared libraries `ldd` names for them.
#
#   deploy/cluster-images.sh        # images tagged :dev (TETHER_TAG overrides)
#
# Exits 3 when docker, PostgreSQL or haproxy is missing, saying how to get it.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${TETHER_TAG:-dev}
out=target/docker-cluster

docker info >/dev/null 2>&1 || { echo "cluster-images: no Docker engine (docker info failed)" >&2; exit 3; }
pgbin=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1 || true)
[[ -n $pgbin && -x $pgbin/postgres ]] ||
    { echo "cluster-images: PostgreSQL is missing: apt-get install postgresql" >&2; exit 3; }
command -v haproxy >/dev/null ||
    { echo "cluster-images: haproxy is missing: apt-get install haproxy" >&2; exit 3; }
pgversion=$(basename "$(dirname "$pgbin")")

# Copies files into root filesystem $1 at the same paths, with the libraries they load.
lay() {
    local root=$1
    shift
    local file lib
    for file in "$@"; do
        mkdir -p "$root$(dirname "$file")"
        cp -aL "$file" "$root$file"
        # `ldd` lists "name => /path (addr)" and the loader as "/path (addr)".
        while read -r lib; do
            [[ -n $lib && ! -e $root$lib ]] || continue
            mkdir -p "$root$(dirname "$lib")"
            cp -aL "$lib" "$root$lib"
        done < <(ldd "$file" 2>/dev/null | awk '/=> \//{print $3} /^\t\//{print $1}')
    done
}

rm -rf "$out"

# PostgreSQL: the server, initdb and pg_isready, their modules (without the JIT, which
# the entrypoint turns off), the shared data initdb reads, time zones, and a shell for
# the entrypoint. It runs as the user `postgres` (uid 999).
pg=$out/postgres/root
lay "$pg" "$pgbin/postgres" "$pgbin/initdb" "$pgbin/pg_isready" /bin/sh
for module in /usr/lib/postgresql/"$pgversion"/lib/*.so; do
    [[ $module == */llvmjit* ]] || lay "$pg" "$module"
done
mkdir -p "$pg/usr/share/postgresql" "$pg/usr/share"
cp -a "/usr/share/postgresql/$pgversion" "$pg/usr/share/postgresql/"
cp -a /usr/share/zoneinfo "$pg/usr/share/"
mkdir -p "$pg/etc" "$pg/tmp" "$out/postgres/data"
chmod 1777 "$pg/tmp"
echo 'root:x:0:0:root:/root:/bin/sh' >"$pg/etc/passwd"
echo 'postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh' >>"$pg/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\n' >"$pg/etc/group"
chmod 700 "$out/postgres/data"
cat >"$pg/entrypoint.sh" <<SH
#!/bin/sh
# First start: a cluster in the volume, the user tether with \$POSTGRES_PASSWORD over
# the network, and the database tether.
set -e
export PATH=$pgbin
data=/var/lib/postgresql/data
if [ ! -s "\$data/PG_VERSION" ]; then
    [ -n "\$POSTGRES_PASSWORD" ] || { echo "POSTGRES_PASSWORD is not set" >&2; exit 2; }
    umask 077
    printf '%s\n' "\$POSTGRES_PASSWORD" >/tmp/pw
    initdb -D "\$data" -U tether --pwfile=/tmp/pw --auth-local=trust \\
        --auth-host=scram-sha-256 --locale=C -E UTF8 >/dev/null
    : >/tmp/pw
    echo 'host all all 0.0.0.0/0 scram-sha-256' >>"\$data/pg_hba.conf"
    echo 'CREATE DATABASE tether' | postgres --single -D "\$data" -c jit=off postgres >/dev/null
fi
exec postgres -D "\$data" -c listen_addresses='*' -c unix_socket_directories=/tmp -c jit=off
SH
chmod 755 "$pg/entrypoint.sh"
cat >"$out/postgres/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root /
# (COPY makes files root's unless told otherwise.)
COPY --chown=999:999 data /var/lib/postgresql/data
USER 999:999
ENV TZ=UTC
VOLUME /var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/entrypoint.sh"]
DOCKERFILE
# The health check runs pg_isready on the socket.
sed -i "s|^EXPOSE 5432|EXPOSE 5432\nHEALTHCHECK --interval=2s --timeout=3s --retries=30 CMD [\"$pgbin/pg_isready\", \"-h\", \"/tmp\", \"-U\", \"tether\", \"-d\", \"tether\"]|" \
    "$out/postgres/Dockerfile"
docker build -q -t "tether-postgres:$tag" "$out/postgres" >/dev/null

# haproxy: the program alone; compose mounts its configuration (deploy/cluster/haproxy.cfg).
hp=$out/haproxy/root
lay "$hp" "$(command -v haproxy)"
mkdir -p "$hp/etc/haproxy" "$hp/tmp"
chmod 1777 "$hp/tmp"
cat >"$out/haproxy/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root /
USER 10002:10002
EXPOSE 8080 1883
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
DOCKERFILE
docker build -q -t "tether-haproxy:$tag" "$out/haproxy" >/dev/null

docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^tether-(postgres|haproxy):$tag "

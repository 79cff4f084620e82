#!/bin/bash
# A multi-user workload, one phase per run: `posix_workload.sh ROOT PHASE`, each phase run by the
# test as its own uid (setpriv). Prints one line per command: "ok: CMD" or "ERR: CMD: <strerror>",
# so the same run on a local directory and on a RazorFS mount can be compared line by line.
set -u
cd "$1" || exit 99
umask 022

t() {
    local out
    if out=$("$@" 2>&1 </dev/null); then
        echo "ok: $*"
    else
        echo "ERR: $*: ${out##*: }"
    fi
}

long_name=$(printf 'n%.0s' $(seq 1 256))

case "$2" in
root)
    t mkdir srv shared team
    t chown 1000:1000 srv
    t chmod 1777 shared
    t chown 0:3000 team
    t chmod 2770 team
    ;;
owner) # uid 1000, groups 1000 and 3000
    t install -d -m 0750 srv/app srv/app/data
    t install -d -m 0700 srv/app/secret
    t install -d -m 0755 -o 1000 -g 3000 srv/app/public
    t sh -c 'echo cfg > srv/app/config'
    t chmod 0640 srv/app/config
    t chgrp 3000 srv/app/data
    t chown 1001 srv/app/config
    t chown 0:0 srv/app
    t chgrp 4000 srv/app/config
    t chmod 0777 shared
    t sh -c 'echo a > shared/a1000'
    t mkdir shared/d1000
    t sh -c 'echo t > team/t1000'
    t mkdir team/sub
    t mkfifo -m 0620 srv/app/fifo
    t mknod srv/app/null c 1 3
    t touch -a -d @978307201 srv/app/config
    t touch -m -d @1000000000 srv/app/data
    t ln -s loop1 srv/loop2
    t ln -s loop2 srv/loop1
    t cat srv/loop1
    t touch "srv/$long_name"
    t mkdir srv/app
    t rmdir srv/app/config
    t cat srv/app/config/x
    t sh -c ': > srv/app/data'
    t mv srv/app/data srv/app/config
    ;;
other) # uid 1001, no supplementary groups
    t ls srv/app
    t cat srv/app/config
    t sh -c 'echo b > shared/b1001'
    t rm -f shared/a1000
    t mv shared/a1000 shared/x1001
    t rmdir shared/d1000
    t sh -c 'echo x >> shared/a1000'
    t touch team/t1001
    t ls team
    t chmod 0777 srv
    t mkdir srv/x
    t chown 1001 shared/b1001
    t touch -d @1000000000 shared/a1000
    t touch shared/a1000
    ;;
owner_again) # uid 1000, groups 1000 and 3000
    t rm -f shared/b1001
    t rm shared/a1000
    t rmdir shared/d1000
    t rmdir srv/app
    t rm -r srv/app/secret
    t mv srv/app/data srv/app/data2
    t chmod 2750 srv/app/data2
    t chmod 4755 srv/app/config
    t sh -c 'echo more >> srv/app/config'
    t rm srv/app/fifo
    ;;
tree) # as root: what the workload left, without times and sizes of directories
    find . -mindepth 1 -printf '%P %M %u:%g\n' | sort
    stat -c '%n %X' srv/app/config
    stat -c '%n %Y' srv/app/data2
    ;;
esac

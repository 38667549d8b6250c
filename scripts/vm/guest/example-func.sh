# Guest script that produced examples/functrace_example.txt and examples/funccount_example.txt:
# run.sh --kernel 7.x --bin DIR/functrace --bin DIR/funccount scripts/vm/guest/example-func.sh
# smp: 1
# shellcheck shell=sh source=tests/vm/lib.sh
. /vm/lib.sh
wait_banner() { _i=0; while [ ! -s "$1" ]; do _i=$((_i + 1)); [ "$_i" -gt 600 ] && return 1; sleep 0.1; done; }
head -c 65536 /dev/zero >/tmp/ex.data
echo "### functrace -H -d 4 do_nanosleep"
functrace -H -d 4 do_nanosleep >/tmp/ex1.out 2>/tmp/ex1.err &
p=$!; wait_banner /tmp/ex1.out; sleep 0.5; sleep 0.2; usleep 100000; wait "$p"
cat /tmp/ex1.out /tmp/ex1.err
echo "### functrace -d 3 'vfs_read*' (dd reading 3 blocks)"
functrace -d 3 'vfs_read*' >/tmp/ex2.out 2>/tmp/ex2.err &
p=$!; wait_banner /tmp/ex2.out; dd if=/tmp/ex.data of=/dev/null bs=4096 count=3 2>/dev/null; wait "$p"
cat /tmp/ex2.out /tmp/ex2.err
echo "### funccount -d 4 'vfs_*' (dd copying 64 blocks)"
funccount -d 4 'vfs_*' >/tmp/ex3.out 2>/tmp/ex3.err &
p=$!; wait_banner /tmp/ex3.out; dd if=/tmp/ex.data of=/tmp/ex.copy bs=1024 count=64 2>/dev/null; wait "$p"
cat /tmp/ex3.err /tmp/ex3.out
echo "### funccount --counter records -d 4 'vfs_*' (dd copying 64 blocks)"
funccount --counter records -d 4 'vfs_*' >/tmp/ex4.out 2>/tmp/ex4.err &
p=$!; wait_banner /tmp/ex4.out; dd if=/tmp/ex.data of=/tmp/ex.copy bs=1024 count=64 2>/dev/null; wait "$p"
cat /tmp/ex4.err /tmp/ex4.out
echo "### funccount -T -i 1 -d 3 -t 3 'vfs_*'"
funccount -T -i 1 -d 3 -t 3 'vfs_*' >/tmp/ex5.out 2>&1 &
p=$!; wait_banner /tmp/ex5.out
i=0; while [ $i -lt 25 ]; do dd if=/tmp/ex.data of=/dev/null bs=4096 count=2 2>/dev/null; sleep 0.1; i=$((i + 1)); done
wait "$p"
cat /tmp/ex5.out
echo "### funccount --check"
funccount --check 2>&1
echo "### funccount '*'"
funccount -d 1 '*' 2>&1
echo "### functrace vfs_raed"
functrace vfs_raed 2>&1
pass "examples"
vm_finish

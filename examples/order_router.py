#!/usr/bin/env python3
"""The demo order router (examples/order_router.cpp) in Python, on the
`blackbox` module: the original Python API, the same switches to misbehave.

    PYTHONPATH=build/python python3 examples/order_router.py [--journal DIR]
        [--orders N] [--interval-ms MS] [--segfault-after N]
        [--throw-uncaught-after N] [--hang-after N] [--leak-mb-per-order MB]
        [--error-every N] [--tour]

--tour picks the misbehaviour from how many times this service has been
restarted after an unclean end (folded from its journal), so that under
blackbox-watchdog one run shows every path in turn: handled errors and a
segfault inside a C extension, then an uncaught exception, then a hang
(heartbeats stop), then a memory leak.
"""
import argparse
import ctypes
import sys
import threading
import time

from blackbox import initialize_recovery_manager


class Broker:
    def __init__(self):
        self.connected = True

    def reconnect(self):
        self.connected = True


def route_order_with_corrupt_book(order):
    ctypes.string_at(0)  # a segfault in a C extension


def route_order(broker, order, error_every):
    if error_every > 0 and order % error_every == 0:
        broker.connected = False
        raise RuntimeError(f"broker rejected order {order}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--journal", default=None,
                   help="journal root (default: $BLACKBOX_JOURNAL or ./blackbox-journal)")
    p.add_argument("--orders", type=int, default=0, help="stop after N orders (0 = forever)")
    p.add_argument("--interval-ms", type=int, default=200, help="time between orders")
    p.add_argument("--segfault-after", type=int, default=0, help="segfault on order N")
    p.add_argument("--throw-uncaught-after", type=int, default=0,
                   help="raise an uncaught exception on order N")
    p.add_argument("--hang-after", type=int, default=0, help="stop heartbeats and hang on order N")
    p.add_argument("--leak-mb-per-order", type=int, default=0, help="leak this many MB per order")
    p.add_argument("--error-every", type=int, default=0,
                   help="a handled broker error every N orders")
    p.add_argument("--tour", action="store_true",
                   help="misbehave differently on each restart (see the README's demo)")
    a = p.parse_args()
    if a.interval_ms <= 0:
        p.error("--interval-ms must be positive")

    rm = initialize_recovery_manager(journal_dir=a.journal, health_check_interval=5)
    if a.tour:
        restarts = rm.state.restart_count
        if restarts == 0:
            a.error_every, a.segfault_after = 3, 8
        elif restarts == 1:
            a.throw_uncaught_after = 5
        elif restarts == 2:
            a.hang_after = 5
        else:
            a.leak_mb_per_order = 8
        what = ("handled errors, then a segfault" if a.segfault_after
                else "an uncaught exception" if a.throw_uncaught_after
                else "a hang" if a.hang_after else "a memory leak")
        print(f"order_router.py: restart_count {restarts} -> {what}", flush=True)

    broker = Broker()
    running = threading.Event()
    running.set()

    def reconnect_broker():
        broker.reconnect()

    def close_positions():
        rm.state.active_positions = 0

    def disconnect():
        broker.connected = False

    rm.register_recovery_callback(reconnect_broker)
    rm.register_cleanup_callback(close_positions)
    rm.register_cleanup_callback(disconnect)
    # Let the loop finish its current order before the manager shuts down.
    rm.on_shutdown_request(lambda signo: running.clear())
    rm.start_health_monitoring()
    rm.state.active_connections = 1

    leaked = []
    positions = 0
    order = 1
    try:
        while running.is_set() and (a.orders == 0 or order <= a.orders):
            rm.heartbeat()
            if order == a.segfault_after:
                route_order_with_corrupt_book(order)
            if order == a.throw_uncaught_after:
                raise LookupError(f"unroutable order {order}")
            if order == a.hang_after:
                print(f"order {order}: hanging (no more heartbeats)", flush=True)
                while True:
                    time.sleep(3600)
            if a.leak_mb_per_order > 0:
                leaked.append(b"x" * (a.leak_mb_per_order << 20))
            try:
                with rm.exception_handler("order_execution"):
                    route_order(broker, order, a.error_every)
                positions = (positions + 1) % 5
                rm.state.active_positions = positions
            except RuntimeError as e:
                print(f"ERROR order {order}: {e} (recovered: "
                      f"{'yes' if broker.connected else 'no'})", file=sys.stderr, flush=True)
            time.sleep(a.interval_ms / 1000)
            order += 1
    except KeyboardInterrupt:
        pass  # Ctrl+C: on_shutdown_request cleared `running` and raised this
    info = rm.get_system_info()
    print(f"stopping: status {info['status']}, memory {info['memory_usage_mb']:.1f} MB, "
          f"cpu {info['cpu_percent']:.1f} %, restarts {info['restart_count']}", flush=True)
    rm.graceful_shutdown()  # unlike the original, returns: the script ends normally


if __name__ == "__main__":
    main()

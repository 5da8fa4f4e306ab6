import Foundation

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// Wall time, and a monotonic clock that keeps counting while the device sleeps (the idle lock needs that: a phone
/// left asleep in a pocket for an hour has been idle for an hour; Kotlin: `DeviceClock` on `elapsedRealtime`).
///
/// - Apple: `clock_gettime_nsec_np(CLOCK_MONOTONIC_RAW)`, which counts through sleep (unlike `CLOCK_UPTIME_RAW`
///   and `mach_absolute_time`).
/// - Linux: `clock_gettime(CLOCK_BOOTTIME)`, which counts through suspend (unlike `CLOCK_MONOTONIC`).
public final class DeviceClock: HostClock, @unchecked Sendable {
    public init() {}

    public func nowUnixMs() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }

    public func monotonicMs() -> Int64 {
        Self.sinceBootMs()
    }

    /// Milliseconds since an arbitrary point (boot), counting while the device sleeps.
    public static func sinceBootMs() -> Int64 {
        #if canImport(Darwin)
        return Int64(clock_gettime_nsec_np(CLOCK_MONOTONIC_RAW) / 1_000_000)
        #else
        var now = timespec()
        // CLOCK_BOOTTIME cannot fail on Linux ≥ 2.6.39; should it, the process's monotonic clock is the fallback.
        if clock_gettime(CLOCK_BOOTTIME, &now) != 0 {
            clock_gettime(CLOCK_MONOTONIC, &now)
        }
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
        #endif
    }
}

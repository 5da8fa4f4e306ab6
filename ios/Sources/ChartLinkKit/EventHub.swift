import Foundation

/// The one `EventListener` handed to ChartLink, fanned out to any number of `AsyncStream`s (Kotlin: `EventHub`).
///
/// ChartLink calls `onEvent` on its own threads; each stream buffers its events, so a slow consumer never blocks
/// the SDK (past `bufferSize` events behind, its oldest events are dropped).
public final class EventHub: EventListener, @unchecked Sendable {
    private static let bufferSize = 256
    private let lock = NSLock()
    private var sinks: [UUID: AsyncStream<Event>.Continuation] = [:]

    public init() {}

    public func onEvent(event: Event) {
        lock.lock()
        let current = Array(sinks.values)
        lock.unlock()
        for sink in current {
            sink.yield(event)
        }
    }

    /// A stream of the events that happen from now until the consumer stops iterating.
    public func events() -> AsyncStream<Event> {
        AsyncStream(bufferingPolicy: .bufferingNewest(Self.bufferSize)) { continuation in
            let id = UUID()
            lock.lock()
            sinks[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                self.lock.lock()
                self.sinks[id] = nil
                self.lock.unlock()
            }
        }
    }

    /// How many streams are registered.
    public var collectors: Int {
        lock.lock()
        defer { lock.unlock() }
        return sinks.count
    }
}

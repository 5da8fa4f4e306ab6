import Foundation

/// The one `EventListener` handed to ChartLink, fanned out to any number of `AsyncStream`s (Kotlin: `EventHub`).
///
/// ChartLink calls `onEvent` on its own threads; each stream buffers its events, so a slow consumer never blocks
/// the SDK (past `bufferSize` events behind, its oldest events are dropped).
public final class EventHub: EventListener, @unchecked Sendable {
    private static let bufferSize = 256
    private let lock = NSLock()
    private var sinks: [UUID: AsyncStream<Event>.Continuation] = [:]
    private var observers: [@Sendable (Event) -> Void] = []

    public init() {}

    public func onEvent(event: Event) {
        lock.lock()
        let current = Array(sinks.values)
        let watching = observers
        lock.unlock()
        for observer in watching {
            observer(event)
        }
        for sink in current {
            sink.yield(event)
        }
    }

    /// Calls `observer` with every event, on the SDK's thread, for the life of the hub (the client's own state
    /// keeping; it must return at once).
    func observe(_ observer: @escaping @Sendable (Event) -> Void) {
        lock.lock()
        observers.append(observer)
        lock.unlock()
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

/// A fan-out of "something changed" to any number of streams, each keeping only that a change is pending (a burst of
/// changes is one read for a `live` query).
final class ChangeFeed: @unchecked Sendable {
    private let lock = NSLock()
    private var sinks: [UUID: AsyncStream<Void>.Continuation] = [:]

    func changed() {
        lock.lock()
        let current = Array(sinks.values)
        lock.unlock()
        for sink in current {
            sink.yield()
        }
    }

    func stream() -> AsyncStream<Void> {
        AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
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
}

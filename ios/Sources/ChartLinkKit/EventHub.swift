import Foundation

/// The one `EventListener` handed to ChartLink, fanned out to any number of `AsyncStream`s (Kotlin: `EventHub`).
///
/// ChartLink calls `onEvent` on its own threads; each stream buffers its events, so a slow consumer never blocks
/// the SDK (past `bufferSize` events behind, its oldest events are dropped).
public final class EventHub: EventListener, @unchecked Sendable {
    private let streams = Fanout<Event>(bufferingNewest: 256)
    private let lock = NSLock()
    private var observers: [@Sendable (Event) -> Void] = []

    public init() {}

    public func onEvent(event: Event) {
        lock.lock()
        let watching = observers
        lock.unlock()
        for observer in watching {
            observer(event)
        }
        streams.send(event)
    }

    /// Calls `observer` with every event, on the SDK's thread, for the life of the hub (the client's own state
    /// keeping; it must return at once).
    func observe(_ observer: @escaping @Sendable (Event) -> Void) {
        lock.lock()
        observers.append(observer)
        lock.unlock()
    }

    /// A stream of the events that happen from now until the consumer stops iterating.
    public func events() -> AsyncStream<Event> { streams.stream() }

    /// How many streams are registered.
    public var collectors: Int { streams.count }
}

/// "Something changed", fanned out to any number of streams that each keep only that a change is pending: a burst of
/// changes is one read for a `live` query.
final class ChangeFeed: @unchecked Sendable {
    private let streams = Fanout<Void>(bufferingNewest: 1)

    func changed() { streams.send(Void()) }

    func stream() -> AsyncStream<Void> { streams.stream() }
}

/// Values sent to every stream registered at the time, each stream buffering the newest `limit` (a slow consumer
/// never blocks the sender); a stream leaves when its consumer stops iterating.
final class Fanout<Element: Sendable>: @unchecked Sendable {
    private let limit: Int
    private let lock = NSLock()
    private var sinks: [UUID: AsyncStream<Element>.Continuation] = [:]

    init(bufferingNewest limit: Int) {
        self.limit = limit
    }

    func send(_ value: Element) {
        lock.lock()
        let current = Array(sinks.values)
        lock.unlock()
        for sink in current {
            sink.yield(value)
        }
    }

    func stream() -> AsyncStream<Element> {
        AsyncStream(bufferingPolicy: .bufferingNewest(limit)) { continuation in
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

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return sinks.count
    }
}

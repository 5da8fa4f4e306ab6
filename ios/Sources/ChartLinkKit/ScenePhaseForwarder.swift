#if canImport(SwiftUI)
import SwiftUI
#if canImport(UIKit)
import UIKit
import UIKit.UIGestureRecognizerSubclass
#endif

/// Feeds the scene's phase to ChartLink's idle lock (Kotlin: `ChartLinkLifecycleObserver`): `.active` is the
/// foreground, `.background` the background, and user activity — every touch anywhere in the scene's windows
/// (sheets, full-screen covers and alerts included) and every keystroke in a text field or text view — restarts the
/// idle timer (at most once a second; see `UserActivityMonitor`).
///
/// ```swift
/// WindowGroup { ContentView().chartLinkLifecycle(client) }
/// ```
public struct ScenePhaseForwarder: ViewModifier {
    let client: ChartLinkClient
    @Environment(\.scenePhase) private var scenePhase
    @StateObject private var monitor = UserActivityMonitor()

    public init(client: ChartLinkClient) {
        self.client = client
    }

    public func body(content: Content) -> some View {
        content
            .onAppear {
                monitor.start { [client] in client.recordActivity() }
                if scenePhase == .active { client.onForeground() }
            }
            .onDisappear { monitor.stop() }
            .onChange(of: scenePhase) { phase in
                switch phase {
                case .active:
                    monitor.attachToWindows()
                    client.onForeground()
                case .background: client.onBackground()
                default: break
                }
            }
    }
}

/// Sees the user's activity where a SwiftUI gesture cannot: a gesture on the root view misses sheets (presented
/// above it) and typing. A passive gesture recognizer on each of the app's windows sees every touch in that window
/// without taking part in gesture recognition; text-change notifications report typing.
@MainActor
public final class UserActivityMonitor: ObservableObject {
    private var report: (() -> Void)?
    private var lastReport = Date.distantPast
    private var observers: [NSObjectProtocol] = []
    #if canImport(UIKit)
    private var recognizers: [(UIWindow, UIGestureRecognizer)] = []
    #endif

    public nonisolated init() {}

    /// Starts reporting activity to `report` (at most once a second).
    public func start(_ report: @escaping () -> Void) {
        self.report = report
        #if canImport(UIKit)
        if observers.isEmpty {
            for name in [UITextField.textDidChangeNotification, UITextView.textDidChangeNotification] {
                observers.append(
                    NotificationCenter.default.addObserver(forName: name, object: nil, queue: .main) { [weak self] _ in
                        MainActor.assumeIsolated { self?.userActed() }
                    })
            }
        }
        #endif
        attachToWindows()
    }

    /// Adds the passive recognizer to windows that do not have it yet (new scenes, windows created later).
    public func attachToWindows() {
        #if canImport(UIKit)
        let windows = UIApplication.shared.connectedScenes
            .compactMap { $0 as? UIWindowScene }
            .flatMap(\.windows)
        for window in windows where !recognizers.contains(where: { $0.0 === window }) {
            let recognizer = TouchObserver { [weak self] in self?.userActed() }
            window.addGestureRecognizer(recognizer)
            recognizers.append((window, recognizer))
        }
        #endif
    }

    public func stop() {
        for observer in observers { NotificationCenter.default.removeObserver(observer) }
        observers.removeAll()
        #if canImport(UIKit)
        for (window, recognizer) in recognizers { window.removeGestureRecognizer(recognizer) }
        recognizers.removeAll()
        #endif
        report = nil
    }

    private func userActed() {
        let now = Date()
        guard now.timeIntervalSince(lastReport) >= 1 else { return }
        lastReport = now
        report?()
    }
}

#if canImport(UIKit)
/// Notes that a touch began and then fails at once: it never recognizes, cancels or delays a touch.
private final class TouchObserver: UIGestureRecognizer, UIGestureRecognizerDelegate {
    private let touched: () -> Void

    init(_ touched: @escaping () -> Void) {
        self.touched = touched
        super.init(target: nil, action: nil)
        cancelsTouchesInView = false
        delaysTouchesBegan = false
        delaysTouchesEnded = false
        delegate = self
    }

    override func touchesBegan(_ touches: Set<UITouch>, with event: UIEvent) {
        touched()
        state = .failed
    }

    func gestureRecognizer(
        _ gestureRecognizer: UIGestureRecognizer,
        shouldRecognizeSimultaneouslyWith otherGestureRecognizer: UIGestureRecognizer
    ) -> Bool {
        true
    }
}
#endif

extension View {
    /// Forwards this scene's lifecycle, touches and typing to ChartLink's idle lock.
    public func chartLinkLifecycle(_ client: ChartLinkClient) -> some View {
        modifier(ScenePhaseForwarder(client: client))
    }
}
#endif

#if canImport(SwiftUI)
import SwiftUI

/// Feeds the scene's phase to ChartLink's idle lock (Kotlin: `ChartLinkLifecycleObserver`): `.active` is the
/// foreground, `.background` the background, and every touch counts as user activity (at most once a second).
///
/// ```swift
/// WindowGroup { ContentView().chartLinkLifecycle(client) }
/// ```
public struct ScenePhaseForwarder: ViewModifier {
    let client: ChartLinkClient
    @Environment(\.scenePhase) private var scenePhase
    @State private var lastActivity = Date.distantPast

    public init(client: ChartLinkClient) {
        self.client = client
    }

    public func body(content: Content) -> some View {
        content
            .onAppear {
                if scenePhase == .active { client.onForeground() }
            }
            .onChange(of: scenePhase) { phase in
                switch phase {
                case .active: client.onForeground()
                case .background: client.onBackground()
                default: break
                }
            }
            .simultaneousGesture(
                DragGesture(minimumDistance: 0).onChanged { _ in userActed() }
            )
    }

    private func userActed() {
        let now = Date()
        if now.timeIntervalSince(lastActivity) >= 1 {
            lastActivity = now
            client.recordActivity()
        }
    }
}

extension View {
    /// Forwards this scene's lifecycle and touches to ChartLink's idle lock.
    public func chartLinkLifecycle(_ client: ChartLinkClient) -> some View {
        modifier(ScenePhaseForwarder(client: client))
    }
}
#endif

/// How the client speaks with the person pushing: the command line gives it a terminal's
/// prompts, a test or a script none.
public struct Interaction: Sendable {
    /// Notices, one line each: roll installed on a server, a host key recorded, a warning.
    public var say: @Sendable (String) -> Void
    /// Asks for a password or passphrase without echo; nil when there is no one to ask.
    public var askSecret: @Sendable (String) -> String?
    /// Asks a yes/no question; nil when there is no terminal to ask on.
    public var confirm: (@Sendable (String) -> Bool)?

    public init(say: @escaping @Sendable (String) -> Void, askSecret: @escaping @Sendable (String) -> String?,
                confirm: (@Sendable (String) -> Bool)?) {
        self.say = say
        self.askSecret = askSecret
        self.confirm = confirm
    }

    /// Says nothing and asks nothing.
    public static let silent = Interaction(say: { _ in }, askSecret: { _ in nil }, confirm: nil)
}

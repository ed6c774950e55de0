// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import JSONCore
import Synchronization

// MARK: - Errors

/// An error answered by chromedriver (W3C WebDriver §6.6: an error code and a message), or
/// raised by the client around it (no answer, a wait that timed out).
public struct WebDriverError: Error, CustomStringConvertible, Sendable {
    /// A WebDriver error code, e.g. `no such element`. An open set: chromedriver may answer
    /// codes not listed here; they keep their text.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        public static let noSuchElement = Code(rawValue: "no such element")
        public static let staleElementReference = Code(rawValue: "stale element reference")
        public static let elementNotInteractable = Code(rawValue: "element not interactable")
        public static let invalidArgument = Code(rawValue: "invalid argument")
        public static let invalidSessionID = Code(rawValue: "invalid session id")
        public static let sessionNotCreated = Code(rawValue: "session not created")
        public static let javascriptError = Code(rawValue: "javascript error")
        public static let scriptTimeout = Code(rawValue: "script timeout")
        public static let timeout = Code(rawValue: "timeout")
        public static let unknownError = Code(rawValue: "unknown error")
        /// Not a protocol code: chromedriver could not be reached or did not answer WebDriver JSON.
        public static let noResponse = Code(rawValue: "no response")
    }

    /// The WebDriver error code.
    public let code: Code
    /// chromedriver's message (without its stack trace and session info), or the client's.
    public let message: String
    /// The command that failed, e.g. `POST /session/{id}/element`.
    public let command: String

    public init(code: Code, message: String, command: String) {
        self.code = code
        self.message = message
        self.command = command
    }

    public var description: String { "WebDriver \(command): \(code): \(message)" }
}

// MARK: - Values

/// A reference to an element of the current page (WebDriver §12.1, the web element identifier).
public struct WebElement: Hashable, Sendable {
    /// The key under which WebDriver sends and expects an element reference.
    public static let identifierKey = "element-6066-11e4-a52e-4f735466cecf"
    /// chromedriver's id for the element.
    public let id: String
    public init(id: String) { self.id = id }
    /// The element as a script argument for `execute`.
    public var json: JSONValue { .object(JSONObject([JSONObject.Member(key: Self.identifierKey, value: .string(id))])) }
}

/// A cookie as WebDriver shows it (WebDriver §14.1): what a console's session cookie is checked against.
public struct BrowserCookie: Equatable, Sendable {
    public var name: String
    public var value: String
    public var path: String?
    public var domain: String?
    public var secure: Bool
    public var httpOnly: Bool
    /// `Strict`, `Lax` or `None`.
    public var sameSite: String?
    /// Seconds since the epoch; nil for a session cookie.
    public var expiry: Int64?

    public init(
        name: String, value: String, path: String? = nil, domain: String? = nil, secure: Bool = false,
        httpOnly: Bool = false, sameSite: String? = nil, expiry: Int64? = nil
    ) {
        self.name = name
        self.value = value
        self.path = path
        self.domain = domain
        self.secure = secure
        self.httpOnly = httpOnly
        self.sameSite = sameSite
        self.expiry = expiry
    }
}

// MARK: - Browser

/// A real headless Chromium driven over the W3C WebDriver protocol by a `chromedriver` child
/// process on a free loopback port, in a temporary folder (profile, HOME, logs) removed by `stop()`.
///
/// The tests speak WebDriver to chromedriver directly, in Swift, instead of using Selenium's
/// Python client: Selenium would move the browser tests out of Swift Testing into a second
/// test runner, and chromedriver is the same real component Selenium drives. Needs Debian's
/// `chromium` and `chromium-driver`; `scripts/test` installs them. The browser resolves no host
/// name but `localhost` (every other name fails at once), so a page's third-party assets never
/// reach the network and a test never depends on it.
public final class Browser: Sendable {
    /// The Chromium that chromedriver starts (Debian's launcher script, which execs the binary).
    public static let chromiumBinary = "/usr/bin/chromium"

    /// chromedriver's port on 127.0.0.1.
    public let port: Int
    /// The WebDriver session id.
    public let sessionID: String
    /// The browser's process id as chromedriver reports it (`goog:processID`).
    public let browserPID: Int32?
    /// Profile, HOME and logs; removed by `stop()`.
    public let directory: TemporaryDirectory
    /// The chromedriver child process.
    public let driver: ChildProcess
    private let stopped = Mutex(false)

    private init(port: Int, sessionID: String, browserPID: Int32?, directory: TemporaryDirectory, driver: ChildProcess)
    {
        self.port = port
        self.sessionID = sessionID
        self.browserPID = browserPID
        self.directory = directory
        self.driver = driver
    }

    deinit { stop() }

    /// `chromedriver` from PATH, else `/usr/bin/chromedriver`; nil when neither is there.
    public static func chromedriverPath() -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for dir in dirs + ["/usr/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/chromedriver") {
            return dir + "/chromedriver"
        }
        return nil
    }

    /// Starts chromedriver on a free loopback port, waits until its `/status` is ready and
    /// opens a session with headless Chromium in a fresh profile. Fails (never skips) when
    /// Chromium or chromedriver is missing.
    public static func start(width: Int = 1280, height: Int = 900) throws -> Browser {
        guard let chromedriver = chromedriverPath(), FileManager.default.isExecutableFile(atPath: chromiumBinary)
        else {
            throw TestError(
                "chromium and chromedriver are not installed (apt-get install chromium chromium-driver): "
                    + "run scripts/test")
        }
        let directory = TemporaryDirectory()
        let dir = directory.path
        for sub in ["/profile", "/home", "/home/.config", "/home/.cache"] {
            try FileManager.default.createDirectory(atPath: dir + sub, withIntermediateDirectories: true)
        }
        // HOME and XDG folders in the temporary folder: Chromium's crash handler database and
        // caches stay there (not in the user's home), and every process that outlives
        // chromedriver names the folder, so `stop()` can find it.
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = dir + "/home"
        environment["XDG_CONFIG_HOME"] = dir + "/home/.config"
        environment["XDG_CACHE_HOME"] = dir + "/home/.cache"
        let log = dir + "/chromedriver.log"
        let port = try freeLoopbackPort()
        let driver = try ChildProcess([chromedriver, "--port=\(port)"], outputPath: log, environment: environment)
        func fail(_ what: String) -> TestError {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let tree = descendantProcesses(of: driver.pid)
            driver.terminate()
            for pid in Set(tree + processes(mentioning: dir)) { kill(pid, SIGKILL) }
            directory.remove()
            return TestError("\(what); chromedriver's log: \(text.suffix(1500))")
        }

        // Ready when /status says so (WebDriver §8.3).
        let deadline = Date().addingTimeInterval(30)
        var ready = false
        while !ready && Date() < deadline && driver.isRunning {
            ready = (try? call(port: port, "GET", "/status", timeout: 5))?.objectValue?["ready"]?.boolValue == true
            if !ready { usleep(50_000) }
        }
        guard ready else { throw fail("chromedriver did not become ready on port \(port)") }

        let args: [String] = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=\(width),\(height)", "--user-data-dir=\(dir)/profile", "--no-first-run",
            "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--lang=en-US",
            // Loopback only: a page's CDN stylesheet fails at once instead of waiting on the network.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        ]
        let capabilities = object([
            ("browserName", .string("chrome")),
            ("pageLoadStrategy", .string("normal")),
            ("timeouts", object([("implicit", .int(0)), ("pageLoad", .int(30_000)), ("script", .int(30_000))])),
            (
                "goog:chromeOptions",
                object([("binary", .string(chromiumBinary)), ("args", .array(args.map(JSONValue.string)))])
            ),
        ])
        let session: JSONObject
        do {
            session =
                try call(
                    port: port, "POST", "/session",
                    body: object([("capabilities", object([("alwaysMatch", capabilities)]))]),
                    timeout: 90
                ).objectValue ?? JSONObject()
        } catch {
            throw fail("no browser session: \(error)")
        }
        guard let id = session["sessionId"]?.stringValue else { throw fail("no session id in chromedriver's answer") }
        let pid = session["capabilities"]?.objectValue?["goog:processID"]?.numberValue?.int64.map { Int32($0) }
        return Browser(port: port, sessionID: id, browserPID: pid, directory: directory, driver: driver)
    }

    /// Ends the session (chromedriver closes Chromium), stops chromedriver, kills whatever of
    /// Chromium outlived it and removes the temporary folder. Safe to call twice.
    public func stop() {
        let first = stopped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        // Collected first: once chromedriver is gone its orphans belong to init.
        let tree = descendantProcesses(of: driver.pid)
        _ = try? Self.call(port: port, "DELETE", "/session/\(sessionID)", timeout: 15)
        driver.terminate()
        // Ours by ancestry (checked to still be a Chromium: a pid can be reused) or because the
        // command line names our temporary folder (crashpad's handler detaches itself).
        let leftovers = Set(
            tree.filter { commandLine(of: $0)?.contains("chrom") == true } + processes(mentioning: directory.path))
        for pid in leftovers { kill(pid, SIGKILL) }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && leftovers.contains(where: { commandLine(of: $0) != nil }) { usleep(20_000) }
        directory.remove()
    }

    // MARK: - Navigation

    /// Navigates to `url` and waits for the page to load (WebDriver §10.1, page load strategy "normal").
    public func open(_ url: String) throws {
        try command("POST", "/url", object([("url", .string(url))]))
    }

    /// The URL of the current page.
    public var currentURL: String {
        get throws { try command("GET", "/url").stringValue ?? "" }
    }

    /// The current page's title.
    public var title: String {
        get throws { try command("GET", "/title").stringValue ?? "" }
    }

    /// The current page's DOM serialised as HTML.
    public var pageSource: String {
        get throws { try command("GET", "/source").stringValue ?? "" }
    }

    /// Resizes the window (WebDriver §11.8.2).
    public func setWindowSize(width: Int, height: Int) throws {
        try command("POST", "/window/rect", object([("width", .int(width)), ("height", .int(height))]))
    }

    // MARK: - Elements

    /// The first element matching the CSS selector; throws `noSuchElement` naming the selector.
    public func find(css selector: String) throws -> WebElement {
        do {
            let found = try command(
                "POST", "/element", object([("using", .string("css selector")), ("value", .string(selector))]))
            return try element(found, "POST /session/{id}/element")
        } catch let error as WebDriverError where error.code == .noSuchElement {
            // The page without its query: a redirect's query may carry a code.
            let page = ((try? currentURL) ?? "").split(separator: "?").first.map(String.init) ?? ""
            throw WebDriverError(
                code: .noSuchElement, message: "no element matches the CSS selector \(selector) on \(page)",
                command: error.command)
        }
    }

    /// Every element matching the CSS selector, in document order (none is not an error).
    public func findAll(css selector: String) throws -> [WebElement] {
        let found = try command(
            "POST", "/elements", object([("using", .string("css selector")), ("value", .string(selector))]))
        return try (found.arrayValue ?? []).map { try element($0, "POST /session/{id}/elements") }
    }

    /// Clicks the element (scrolled into view; WebDriver §12.5.1).
    public func click(_ element: WebElement) throws {
        try command("POST", "/element/\(element.id)/click")
    }

    /// Types `text` into the element (WebDriver §12.5.3), after what it already holds.
    public func type(_ element: WebElement, _ text: String) throws {
        try command("POST", "/element/\(element.id)/value", object([("text", .string(text))]))
    }

    /// Empties an input or textarea (WebDriver §12.5.2).
    public func clear(_ element: WebElement) throws {
        try command("POST", "/element/\(element.id)/clear")
    }

    /// The element's rendered text.
    public func text(_ element: WebElement) throws -> String {
        try command("GET", "/element/\(element.id)/text").stringValue ?? ""
    }

    /// The element's attribute (or property of the same name, as WebDriver §12.4.2 defines); nil when absent.
    public func attribute(_ element: WebElement, _ name: String) throws -> String? {
        let encoded = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
        return try command("GET", "/element/\(element.id)/attribute/\(encoded)").stringValue
    }

    // MARK: - Scripts

    /// Runs `script` as the body of a function in the page, with `args` as `arguments`, and
    /// returns what it returns (elements come back as `{"element-6066-…": id}` objects).
    @discardableResult
    public func execute(_ script: String, _ args: [JSONValue] = []) throws -> JSONValue {
        try command("POST", "/execute/sync", object([("script", .string(script)), ("args", .array(args))]))
    }

    /// Runs `script` asynchronously: it gets a callback as its last argument and the result
    /// is what it passes to it (WebDriver §13.2.2); the session's script timeout is 30 s.
    @discardableResult
    public func executeAsync(_ script: String, _ args: [JSONValue] = []) throws -> JSONValue {
        try command("POST", "/execute/async", object([("script", .string(script)), ("args", .array(args))]))
    }

    /// Polls `condition` every 100 ms until it holds; a WebDriver error inside it (an element
    /// not there yet) counts as "not yet". Throws `timeout` naming `what` after `timeout` seconds.
    public func waitUntil(timeout: Double = 10, _ what: String = "the condition", _ condition: () throws -> Bool)
        throws
    {
        let deadline = Date().addingTimeInterval(timeout)
        var last: WebDriverError? = nil
        while true {
            do {
                if try condition() { return }
            } catch let error as WebDriverError {
                last = error
            }
            if Date() >= deadline {
                throw WebDriverError(
                    code: .timeout,
                    message: "timed out after \(timeout) s waiting for \(what)" + (last.map { "; last: \($0)" } ?? ""),
                    command: "waitUntil")
            }
            usleep(100_000)
        }
    }

    // MARK: - Cookies

    /// The cookies visible to the current page.
    public var cookies: [BrowserCookie] {
        get throws {
            try (command("GET", "/cookie").arrayValue ?? []).compactMap { value in
                guard let c = value.objectValue, let name = c["name"]?.stringValue else { return nil }
                return BrowserCookie(
                    name: name, value: c["value"]?.stringValue ?? "", path: c["path"]?.stringValue,
                    domain: c["domain"]?.stringValue, secure: c["secure"]?.boolValue ?? false,
                    httpOnly: c["httpOnly"]?.boolValue ?? false, sameSite: c["sameSite"]?.stringValue,
                    expiry: c["expiry"]?.numberValue?.int64)
            }
        }
    }

    /// Adds a cookie for the current page's domain (WebDriver §14.3: open a page of that origin first).
    public func addCookie(_ cookie: BrowserCookie) throws {
        var members: [(String, JSONValue)] = [("name", .string(cookie.name)), ("value", .string(cookie.value))]
        if let p = cookie.path { members.append(("path", .string(p))) }
        if let d = cookie.domain { members.append(("domain", .string(d))) }
        members.append(("secure", .bool(cookie.secure)))
        members.append(("httpOnly", .bool(cookie.httpOnly)))
        if let s = cookie.sameSite { members.append(("sameSite", .string(s))) }
        if let e = cookie.expiry { members.append(("expiry", .number(JSONNumber(literal: String(e))))) }
        try command("POST", "/cookie", object([("cookie", object(members))]))
    }

    /// Deletes every cookie visible to the current page.
    public func deleteAllCookies() throws {
        try command("DELETE", "/cookie")
    }

    // MARK: - Screenshots and accessibility

    /// Saves a PNG of the viewport at `path` and returns its bytes.
    @discardableResult
    public func screenshot(to path: String) throws -> [UInt8] {
        let text = try command("GET", "/screenshot").stringValue ?? ""
        guard let data = Data(base64Encoded: text) else {
            throw WebDriverError(code: .noResponse, message: "the screenshot is not base64", command: "GET /screenshot")
        }
        try data.write(to: URL(fileURLWithPath: path))
        return [UInt8](data)
    }

    /// The pinned axe-core script: `axe.min.js` from PyPI's `axe-playwright-python` in `.venv`
    /// (only the file is used, none of its Python), found under any `python3.X` folder.
    public static func axeScriptPath() throws -> String {
        let lib = repoRoot + "/.venv/lib"
        for python in ((try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? []).sorted() {
            let path = "\(lib)/\(python)/site-packages/axe_playwright_python/axe.min.js"
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        throw TestError("axe.min.js is not in .venv (PyPI axe-playwright-python): run scripts/test, which installs it")
    }

    /// Runs axe-core on the current page and returns its violations of the given impacts,
    /// one line each: rule id, impact, help text and the CSS targets of the offending nodes.
    /// Injects the pinned `axe.min.js` first when the page does not have it yet.
    public func axe(violationsOf impacts: Set<String> = ["serious", "critical"]) throws -> [String] {
        if try execute("return typeof window.axe === 'object';").boolValue != true {
            try execute(String(contentsOfFile: Self.axeScriptPath(), encoding: .utf8))
        }
        let result = try executeAsync(
            """
            var done = arguments[arguments.length - 1];
            window.axe.run(document, {resultTypes: ['violations']}).then(function (r) {
              done({violations: r.violations.map(function (v) {
                return {id: v.id, impact: v.impact || '', help: v.help,
                        targets: v.nodes.map(function (n) { return n.target.join(' '); })};
              })});
            }, function (e) { done({error: String(e)}); });
            """
        ).objectValue
        if let error = result?["error"]?.stringValue {
            throw WebDriverError(code: .javascriptError, message: "axe.run failed: \(error)", command: "axe")
        }
        guard let violations = result?["violations"]?.arrayValue else {
            throw WebDriverError(code: .javascriptError, message: "axe.run returned no violations list", command: "axe")
        }
        return violations.compactMap { value in
            guard let v = value.objectValue, let impact = v["impact"]?.stringValue, impacts.contains(impact) else {
                return nil
            }
            let targets = (v["targets"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
            return "\(v["id"]?.stringValue ?? "?") (\(impact)): \(v["help"]?.stringValue ?? "") [\(targets)]"
        }
    }

    // MARK: - The protocol

    @discardableResult
    private func command(_ method: String, _ suffix: String, _ body: JSONValue? = nil) throws -> JSONValue {
        try Self.call(
            port: port, method, "/session/\(sessionID)\(suffix)", body: body ?? (method == "POST" ? object([]) : nil),
            name: "\(method) /session/{id}\(suffix)", timeout: 60)
    }

    private func element(_ value: JSONValue, _ command: String) throws -> WebElement {
        guard let id = value.objectValue?[WebElement.identifierKey]?.stringValue else {
            throw WebDriverError(code: .noResponse, message: "the answer holds no element reference", command: command)
        }
        return WebElement(id: id)
    }

    /// One WebDriver command on a fresh connection; returns the answer's `value` or throws its error.
    private static func call(
        port: Int, _ method: String, _ path: String, body: JSONValue? = nil, name: String? = nil, timeout: Double
    ) throws -> JSONValue {
        let name = name ?? "\(method) \(path)"
        let client: RawHTTPClient
        do {
            client = try RawHTTPClient(port: UInt16(port), timeout: timeout)
        } catch {
            throw WebDriverError(
                code: .noResponse, message: "cannot connect to chromedriver on port \(port)", command: name)
        }
        var headers = [("Host", "127.0.0.1:\(port)"), ("Connection", "close")]
        let bytes = body.map { JSONWriter().write($0) }
        if bytes != nil { headers.append(("Content-Type", "application/json; charset=utf-8")) }
        guard let response = client.request(method, path, headers: headers, body: bytes) else {
            throw WebDriverError(
                code: .noResponse, message: "chromedriver did not answer within \(timeout) s", command: name)
        }
        guard let value = response.json?.objectValue?["value"] else {
            throw WebDriverError(
                code: .noResponse, message: "not a WebDriver answer (HTTP \(response.status))", command: name)
        }
        if response.status != 200, let error = value.objectValue {
            // chromedriver appends "(Session info: …)" and a stack trace of its own: left out.
            let message = error["message"]?.stringValue ?? ""
            let cut = message.range(of: "\n  (Session info")?.lowerBound ?? message.endIndex
            throw WebDriverError(
                code: WebDriverError.Code(rawValue: error["error"]?.stringValue ?? "unknown error"),
                message: String(message[..<cut]), command: name)
        }
        return value
    }
}

/// A JSON object from ordered pairs.
private func object(_ members: [(String, JSONValue)]) -> JSONValue {
    .object(JSONObject(members.map { JSONObject.Member(key: $0.0, value: $0.1) }))
}

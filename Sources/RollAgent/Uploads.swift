import RollBundle
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Folders uploaded by other tools (scp, sftp, rsync, a tar stream), made ready to release:
/// waited for until the upload has settled, or unpacked safely under `ROOT/incoming/`.
public enum Uploads {
    /// Waits until `dir` has settled: nothing in it changed for `settle` seconds, or, with
    /// `marker`, until `dir/marker` exists. Refuses it after `wait` seconds. `say` hears one
    /// line when the wait begins.
    public static func waitUntilSettled(_ dir: String, settle: Double, wait: Double, marker: String?,
                                        say: ((String) -> Void)?) throws {
        var st = stat()
        guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw UserError("\(dir) is not a folder", hint: "upload into ROOT/incoming/NAME/ and give that folder", code: Exit.dataError)
        }
        let deadline = monotonicClock() + wait
        var said = false
        while true {
            if let marker {
                if lstat(dir + "/" + marker, &st) == 0 { return }
                if monotonicClock() >= deadline {
                    throw UserError("\(dir)/\(marker) did not appear within \(Int(wait)) s; the upload is not finished",
                                    hint: "the uploader writes the marker last (touch \(dir)/\(marker)); nothing was released", code: Exit.tempFail)
                }
            } else {
                let newest = try newestChange(dir)
                let age = wallClock() - newest.time
                if age >= settle { return }
                let ago = "\(newest.path) changed \(formatSeconds(max(0, age))) ago"
                if monotonicClock() >= deadline {
                    throw UserError("\(dir) is still being written (\(ago))",
                                    hint: "wait for the upload to finish, or have the uploader write a marker file last and use --marker; nothing was released",
                                    code: Exit.tempFail)
                }
                if !said, let say {
                    say("roll: waiting for \(dir) to settle (\(ago))")
                    said = true
                }
            }
            usleep(200_000)
        }
    }

    /// Unpacks the tar stream (plain or gzip) on `input` into a fresh folder under
    /// ROOT/incoming/ and returns its path; `warn` hears members that were skipped.
    public static func unpackTarStream(_ input: Descriptor, root: String,
                                       warn: (String) -> Void) throws -> (path: String, summary: TarExtractor.Summary) {
        let (base, path) = try scratchFolder(root: root, kind: "tar")
        let name = Array(path.split(separator: "/").last!.utf8)
        do {
            let dir = try Descriptor.openDirectory(at: base.fd, name, display: path)
            let extractor = TarExtractor(into: dir)
            let reader = TarReader(DecompressingSource(DescriptorSource(input)))
            let summary = try extractor.extract(reader)
            _ = fchmod(dir.fd, 0o755)
            for s in summary.skipped { warn(s) }
            return (path, summary)
        } catch let e as BundleError {
            removeAll(path)
            throw UserError("the tar stream was refused: \(e)", code: Exit.dataError)
        } catch {
            removeAll(path)
            throw error
        }
    }

    /// The latest change time (ctime: it moves with every write, rename and chmod, even when
    /// an uploader restores the mtime) of anything under `dir`.
    public static func newestChange(_ dir: String) throws -> (time: Double, path: String) {
        var newest = (time: 0.0, path: ".")
        func visit(_ d: Descriptor, _ prefix: String) throws {
            let here = try d.stat()
            let t = Double(here.st_ctim.tv_sec) + Double(here.st_ctim.tv_nsec) / 1e9
            if t > newest.time { newest = (t, prefix.isEmpty ? "." : prefix) }
            for e in try d.entries() {
                let name = prefix.isEmpty ? displayPath(e.name) : prefix + "/" + displayPath(e.name)
                guard let st = try d.statEntryIfPresent(e.name) else { continue }
                let t = Double(st.st_ctim.tv_sec) + Double(st.st_ctim.tv_nsec) / 1e9
                if t > newest.time { newest = (t, name) }
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    try visit(try Descriptor.openDirectory(at: d.fd, e.name, display: name), name)
                }
            }
        }
        try visit(try Descriptor.openDirectory(Array(dir.utf8)), "")
        return newest
    }
}

/// A new folder `ROOT/incoming/.<kind>-<pid>-<time>` to unpack into, and the incoming
/// folder's descriptor. Folders such runs left behind when they were killed go first.
public func scratchFolder(root: String, kind: String) throws -> (Descriptor, String) {
    let incoming = root + "/incoming"
    _ = try Store(path: root)
    if mkdir(incoming, 0o755) != 0 && errno != EEXIST {
        throw SystemError(call: "mkdir", path: incoming, errno: errno)
    }
    let base = try Descriptor.openDirectory(Array(incoming.utf8))
    for e in try base.entries() {
        let parts = String(decoding: e.name, as: UTF8.self).split(separator: "-")
        guard parts.count == 3, parts[0] == ".tar" || parts[0] == ".import", let pid = Int32(parts[1]),
              kill(pid, 0) != 0 && errno == ESRCH else { continue }
        try? base.removeTree(e.name)
    }
    let name = ".\(kind)-\(getpid())-\(currentTime())"
    try base.makeDirectory(Array(name.utf8), mode: 0o700)
    return (base, incoming + "/" + name)
}

/// Removes a folder this process made (best effort: what is left goes with the next run).
public func removeAll(_ path: String) {
    guard let slash = path.lastIndex(of: "/"),
          let parent = try? Descriptor.openDirectory(Array(path[..<slash].utf8)) else { return }
    try? parent.removeTree(Array(path[path.index(after: slash)...].utf8))
}

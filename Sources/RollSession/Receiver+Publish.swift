import RollStore
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

extension Receiver.Build {
    /// Hook output goes to the client as it comes.
    var hookOutput: (String) -> Void {
        let peer = self.peer
        return { line in try? peer.send(LogLine(line)); try? peer.flush() }
    }

    /// The next frame, which must be of `type`, while the client waits for something (its
    /// other containers): each of its keepalives extends the wait by ``stall`` seconds, up to
    /// ``longestWait`` in all.
    func awaitClient(_ type: MessageType, _ what: String) throws -> Frame {
        let timed = peer.stream as? DescriptorStream
        let saved = timed?.idleTimeout
        defer { timed?.idleTimeout = saved }
        let end = monotonicClock() + Self.longestWait
        while true {
            let left = end - monotonicClock()
            guard left > 0 else { throw WireError(.connectionClosed, "no \(what) after \(Int(Self.longestWait)) s") }
            timed?.idleTimeout = min(stall, left)
            let frame = try peer.next(expecting: what)
            if frame.type == MessageType.keepalive.rawValue { continue }
            guard frame.type == type.rawValue else {
                throw WireError(.protocolViolation, "expected \(what), got message type \(frame.type)")
            }
            return frame
        }
    }

    /// What the build hook asks while it runs: why to stop it, when the client said so
    /// (`go(abort)`), went away, or sent nothing (not even a keepalive) for ``stall`` s.
    private func clientWatch() -> () -> String? {
        let peer = self.peer
        let stall = self.stall
        let fd = (peer.stream as? DescriptorStream)?.input.fd
        var heard = monotonicClock()
        return {
            while true {
                var waiting = peer.reader.hasBuffered
                if !waiting, let fd {
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    waiting = poll(&p, 1, 0) > 0
                }
                guard waiting else { break }
                do {
                    guard let frame = try peer.nextFrame() else { return "the client closed the connection" }
                    switch MessageType(rawValue: frame.type) {
                    case .keepalive:
                        heard = monotonicClock()
                    case .go:
                        let go = try peer.decode(Go.self, frame)
                        return go.proceed ? "the client sent go before the build was done" : go.reason
                    case .error:
                        return "the client stopped: \((try? ErrorMessage(payload: frame.payload).error.message) ?? "an error")"
                    default:
                        return "the client sent message type \(frame.type) during the build"
                    }
                } catch {
                    return "the client was lost (\(Receiver.wireError(error).message))"
                }
            }
            if monotonicClock() - heard > stall { return "the client sent nothing for \(Int(stall)) s" }
            return nil
        }
    }

    /// The `build` hook in the prepared release; a failure publishes nothing. Returns the
    /// record to publish (its figures corrected when the hook changed deployed files).
    mutating func build(_ store: Store, hooks: ReleaseHooks, record: ReleaseRecord, manifest: EntryTable,
                                context: HookContext) throws -> ReleaseRecord {
        let output = hookOutput
        var record = record
        // What the hook changes is found by looking at every deployed file before and after
        // it (two stats a file: 6 % of the agent's time on a first push of 20,000
        // files), so only when there is a hook to run.
        let watched = hooks.runsCommand(.build, context)
        let before = watched ? fileStates(context.release, manifest) : []
        hooks.interruption = clientWatch()
        defer { hooks.interruption = nil }
        do {
            try hooks.run(.build, context, output: output)
            if watched { try reconcile(before, manifest, context, &record, output: output) }
        } catch let e as HookInterrupted {
            try? store.markFailed(context.release, reason: "interrupted: \(e.reason)")
            try? hooks.run(.failed, context, output: output)
            throw WireError(.aborted, "\(context.release) was not switched: interrupted (\(e.reason)); the build hook was stopped; "
                            + "current is unchanged")
        } catch {
            let reason = "build failed: \(error)"
            try? store.markFailed(context.release, reason: reason)
            try? hooks.run(.failed, context, output: output)
            let sharedDamage = (error as? BuildChangedSharedFiles) != nil
            throw WireError(.hookFailed, "\(reason); nothing was published\(sharedDamage ? "" : ", current is unchanged")")
        }
        return record
    }

    /// `restart` and `verify` (with the health check) in the release just switched to; a
    /// failure switches back.
    mutating func restartAndVerify(_ store: Store, hooks: ReleaseHooks, context: HookContext) throws {
        let output = hookOutput
        do {
            try hooks.run(.restart, context, output: output)
            try hooks.run(.verify, context, output: output)
        } catch {
            let step = (error as? HookFailure)?.step ?? "restart"
            let reason = "\(step) failed: \(error)"
            let what = hooks.switchBack(store, from: context, reason: reason, output: output)
            switchedBack = context.previous != nil
            throw WireError(.hookFailed, "\(context.release) went live but \(reason); \(what)")
        }
    }

    /// What a build hook's touch of a deployed file changes; `links` 0 when the file is
    /// missing or is no longer a regular file.
    struct FileState: Equatable {
        var inode: UInt64 = 0
        var ctime: Int64 = 0
        var ctimeNanoseconds: Int32 = 0
        var links: UInt32 = 0
        var size: Int64 = 0
    }

    private func fileState(_ cursor: DirectoryCursor, _ path: RelativePath) -> FileState {
        guard let dir = try? cursor.directory(path.parentBytes), let st = try? dir.statEntryIfPresent(path.lastComponent),
              (st.st_mode & S_IFMT) == S_IFREG else { return FileState() }
        return FileState(inode: UInt64(st.st_ino), ctime: Int64(st.st_ctim.tv_sec), ctimeNanoseconds: Int32(st.st_ctim.tv_nsec),
                         links: UInt32(clamping: st.st_nlink), size: Int64(st.st_size))
    }

    /// Inode, change time, size and link count of every file of a release, by entry index
    /// (32 bytes an entry): what a build hook touched shows as a difference. Empty when the
    /// release cannot be opened.
    private func fileStates(_ id: ReleaseID, _ manifest: EntryTable) -> [FileState] {
        guard let cursor = try? store.releaseCursor(id) else { return [] }
        var states = [FileState](repeating: FileState(), count: manifest.count)
        for i in manifest.indices where manifest.kind(i) == .file { states[i] = fileState(cursor, manifest[i].path) }
        return states
    }

    /// Makes the manifests true again after the build hook changed deployed files. A file
    /// it replaced or rewrote that only this release holds is hashed again; a file it wrote
    /// into in place that is a hard link shared with earlier releases changed them too:
    /// their manifests are corrected as well (so the next push sends that file again
    /// instead of reusing it) and the build fails, naming the files.
    private mutating func reconcile(_ before: [FileState], _ manifest: EntryTable, _ context: HookContext,
                                    _ record: inout ReleaseRecord, output: (String) -> Void) throws {
        guard before.count == manifest.count, let cursor = try? store.releaseCursor(context.release) else { return }
        var changed = [Int](), shared = [Int]()
        for i in manifest.indices where manifest.kind(i) == .file {
            let a = fileState(cursor, manifest[i].path), b = before[i]
            guard a != b else { continue }
            if b.links > 1 && a.links != 0 && a.inode == b.inode { shared.append(i) } else { changed.append(i) }
        }
        guard !changed.isEmpty || !shared.isEmpty else { return }
        cursor.reset()
        var updates = [Int: Entry]()
        var gone = Set<Int>()
        var sharedInodes = [Int: UInt64]()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        for i in (changed + shared).sorted() {
            var e = manifest[i]
            guard let dir = try? cursor.directory(e.path.parentBytes), let st = try? dir.statEntryIfPresent(e.path.lastComponent),
                  (st.st_mode & S_IFMT) == S_IFREG,
                  let file = try? Descriptor.open(at: dir.fd, e.path.lastComponent, flags: O_RDONLY, display: e.path.description)
            else { gone.insert(i); continue }
            let (digest, size) = try hashFile(file, buffer: buffer)
            e.digest = digest
            e.size = size
            e.mode = UInt32(st.st_mode) & 0o777
            e.mtime = Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec))
            updates[i] = e
            if shared.contains(i) { sharedInodes[i] = UInt64(st.st_ino) }
        }
        let updated = EntryTable(manifest.indices.lazy.filter { !gone.contains($0) }.map { updates[$0] ?? manifest[$0] })
        try store.writeManifest(entries: updated, for: context.release)
        record.rootDigest = Manifest.rootDigest(of: updated).hex
        record.files = UInt64(updated.fileCount)
        record.bytes = updated.totalBytes
        output("build: \(changed.count + shared.count) deployed file(s) changed by the hook; the release's manifest records them as they are now")
        guard !shared.isEmpty else { return }
        // The same inodes in kept releases: their manifests must stop promising the old content.
        for status in (try? store.list()) ?? [] where status.onDisk && status.record.id != context.release {
            guard let old = try? store.entryTable(of: status.record.id), let other = try? store.releaseCursor(status.record.id) else { continue }
            var fixes = [Int: Entry]()
            for (i, inode) in sharedInodes {
                let path = manifest[i].path
                guard let k = old.index(of: path.bytes), old.kind(k) == .file,
                      let dir = try? other.directory(path.parentBytes), let st = try? dir.statEntryIfPresent(path.lastComponent),
                      UInt64(st.st_ino) == inode else { continue }
                var e = old[k]
                e.digest = updates[i]?.digest
                e.size = UInt64(st.st_size)
                fixes[k] = e
            }
            if !fixes.isEmpty { try? store.writeManifest(entries: old.indices.lazy.map { fixes[$0] ?? old[$0] }, for: status.record.id) }
        }
        throw BuildChangedSharedFiles(paths: shared.map { manifest[$0].path.description })
    }
}

/// The build hook wrote into deployed files in place that are hard links shared with
/// earlier releases, so it changed those releases too.
struct BuildChangedSharedFiles: Error, CustomStringConvertible {
    var paths: [String]
    var description: String {
        "the build hook wrote into \(paths.prefix(3).joined(separator: ", "))\(paths.count > 3 ? " and \(paths.count - 3) more" : "") in place; "
            + "unchanged files are hard links shared with earlier releases (the active one too), so their copies changed as well. "
            + "Write a new file and rename it over the old one instead; the next push sends these files again"
    }
}

import RollDelta
import RollStore
import RollSystem
import RollTree
import RollWire

extension Receiver.Build {
    mutating func accept(_ item: ManifestItem) throws {
        switch item {
        case .entry(let e):
            tally(e, was: base.index(of: e.path.bytes).map { base[$0] })
            try add(e)
        case .sameRange(let start, let count):
            guard start <= base.count, count <= base.count - start, count > 0 else {
                throw WireError(.protocolViolation, "range \(start)+\(count) is outside the active release's \(base.count) entries")
            }
            for i in start..<(start + count) { try add(base[i]) }
        case .sameSubtree(let path):
            guard let start = base.index(of: path.bytes), base.kind(start) == .directory else {
                throw WireError(.protocolViolation, "\(path) is not a directory of the active release")
            }
            var i = start
            repeat {
                try add(base[i])
                i += 1
            } while i < base.count && base.isInside(i, path.bytes)
        case .sameSubtreeTimes(let path, let times):
            guard let start = base.index(of: path.bytes), base.kind(start) == .directory else {
                throw WireError(.protocolViolation, "\(path) is not a directory of the active release")
            }
            var end = start + 1
            while end < base.count && base.isInside(end, path.bytes) { end += 1 }
            guard end - start == times.count else {
                throw WireError(.protocolViolation, "\(times.count) times for the \(end - start) entries of \(path)")
            }
            for (i, t) in zip(start..<end, times) { try addTimed(base[i], t) }
        case .sameRangeTimes(let start, let times):
            guard start <= base.count, times.count <= base.count - start, !times.isEmpty else {
                throw WireError(.protocolViolation, "range \(start)+\(times.count) is outside the active release's \(base.count) entries")
            }
            for (i, t) in zip(start..<(start + times.count), times) { try addTimed(base[i], t) }
        }
    }

    /// An entry of the active release with a new mtime.
    private mutating func addTimed(_ old: Entry, _ mtime: Timestamp) throws {
        let e = old.with(mtime: mtime)
        tally(e, was: old)
        try add(e)
    }

    private mutating func add(_ e: Entry) throws {
        guard UInt64(entries.count) < begin.entryCount else {
            throw WireError(.protocolViolation, "the client sent more entries than the \(begin.entryCount) it announced")
        }
        let text = entries.textBytes + e.path.bytes.count + e.target.count
        if let excess = ManifestLimits.excess(entries: entries.count + 1, textBytes: text) {
            throw WireError(.refused, "\(excess); nothing was changed")
        }
        do { try checker.check(e) } catch let d as DecodeError { throw WireError(.protocolViolation, "bad manifest: \(d)") }
        let index = entries.count
        entries.append(e)
        outstanding.append(.nothing)
        try place(e, index: index)
    }

    mutating func flushNeeds() throws {
        var at = 0
        while at < pendingNeeds.count {
            let end = min(at + 65_536, pendingNeeds.count)
            try peer.send(Need(indexes: Array(pendingNeeds[at..<end])))
            at = end
        }
        pendingNeeds.removeAll(keepingCapacity: true)
        try peer.flush()
    }

    /// The block signature of a file of a published release: from the cache, or computed
    /// (and cached when the file is large). Nil when it would not fit in a frame: such a
    /// file is sent whole.
    mutating func signature(of basis: Entry, in release: ReleaseID) throws -> [UInt8]? {
        let digest = basis.digest!
        if let cached = store.cachedSignature(digest, limit: FrameLimits.maxPayload) {
            // The cache is a folder anyone with the app's account can write into: an entry
            // is used only when it decodes as the signature of a file of this size and fits
            // in a frame. Any other is junk: removed, and the signature computed again.
            if cached.count + 16 <= FrameLimits.maxPayload, let s = try? Signature(decoding: cached),
               s.basisLength == Int(basis.size) {
                return cached
            }
            store.dropCachedSignature(digest)
        }
        // A basis the agent cannot open (inside a folder whose mode shuts it out): sent whole.
        guard let file = try? Staging.openFile(try cursor(release), basis.path) else { return nil }
        var builder = try SignatureBuilder.forBasis(size: Int(basis.size))
        // A quarter of a mebibyte a read: a larger buffer reads no faster and stays resident
        // on top of the push's tables while the signature is built.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = try file.read(into: buffer)
            if n == 0 { break }
            try builder.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
        let bytes = builder.finish().encode()
        guard bytes.count + 16 <= FrameLimits.maxPayload else { return nil }
        if basis.size >= Receiver.signatureCacheThreshold { store.cacheSignature(digest, bytes) }
        return bytes
    }

    /// Caches the signature `file` built as it was written (files of 8 MiB and more), so
    /// that the next push that changes it finds its signature without reading it again.
    func cacheSignature(builtBy file: IncomingFile) {
        guard let signature = file.signature, let digest = file.entry.digest else { return }
        let bytes = signature.encode()
        if bytes.count + 16 <= FrameLimits.maxPayload { store.cacheSignature(digest, bytes, durable: false) }
    }

    /// The file of the active release that file `index` was offered a delta against, opened,
    /// and its place in `base`; a delta or patch for a file not offered one is refused.
    mutating func openDeltaBasis(_ index: Int) throws -> (Descriptor, Int) {
        guard expecting(index) == .delta, let b = deltaBasis[index] ?? base.index(of: entries.path(index)), let current,
              staging != nil else {
            throw notAskedFor(index)
        }
        return (try Staging.openFile(try cursor(current), base[b].path), b)
    }

    func expecting(_ index: Int) -> Expect { index < outstanding.count ? outstanding[index] : .nothing }

    mutating func expect(_ what: Expect, _ index: Int) {
        outstanding[index] = what
        outstandingCount += 1
    }

    mutating func settle(_ index: Int) {
        outstanding[index] = .nothing
        outstandingCount -= 1
    }

    /// A delta that did not rebuild the file (a block-hash collision, or a broken delta):
    /// ask once for the whole file.
    mutating func retryWhole(_ index: Int) throws {
        let e = entries[index]
        staging?.discardFile(e)
        guard retried.insert(index).inserted else {
            throw WireError(.verification, "\(e.path): content does not match its digest, even sent whole")
        }
        outstanding[index] = .whole
        try peer.send(Need(indexes: [index]))
        try peer.flush()
    }

    func notAskedFor(_ index: Int) -> WireError {
        WireError(.protocolViolation, "the client sent file #\(index) in a way it was not asked for")
    }
}

import RollStore
import RollSystem
import RollTree
import RollWire

extension Receiver.Build {
    /// Where a file's content can come from without the network.
    struct Source {
        var release: ReleaseID
        var entry: Entry
    }

    /// Creates `e` in staging from what is at hand, or notes what to ask the client for.
    mutating func place(_ e: Entry, index: Int) throws {
        guard let staging else { return classify(e, index: index) }
        switch e.kind {
        case .directory: try staging.makeDirectory(e, at: index)
        case .symlink: try staging.makeSymlink(e)
        case .file:
            let digest = e.digest!
            if e.size == 0 {
                try staging.createFile(e).finish()
                return
            }
            var candidates = [Source]()
            let atPath = base.index(of: e.path.bytes).map { base[$0] }
            if let b = atPath, b.kind == .file, b.digest == digest, let current { candidates.append(Source(release: current, entry: b)) }
            if let i = activeByDigest.find(digest, in: base), let current {
                candidates.append(Source(release: current, entry: base[i]))
            } else if let s = olderSource(digest) {
                candidates.append(s)
            }
            for s in candidates {
                switch try staging.reuse(e, from: try cursor(s.release), path: s.entry.path,
                                         sourceMode: s.entry.mode, sourceMtime: s.entry.mtime) {
                case .linked: counts.linked += 1; return
                case .copied: counts.copied += 1; return
                case .moved, .unavailable: continue
                }
            }
            if let first = firstNeeded.find(digest, in: entries) {
                duplicates.append((UInt32(index), UInt32(first)))
                return
            }
            firstNeeded.insert(index, in: entries)
            if let partial, let hashBuffer, try staging.adopt(e, from: partial, buffer: hashBuffer) != .unavailable {
                // Later entries of the same content link to this one (`duplicates`).
                counts.resumed += 1
                counts.resumedBytes += e.size
                return
            }
            if let (b, signature) = try deltaBasis(for: e, atPath: atPath) {
                if b.path != e.path, let i = base.index(of: b.path.bytes) { deltaBasis[index] = i }
                expect(.delta, index)
                try peer.send(SignatureMessage(index: index, basis: b.digest!, signature: signature))
            } else {
                expect(.whole, index)
                pendingNeeds.append(index)
            }
        }
    }

    /// The file of the active release to send `e` as a delta against, with its signature: the
    /// file at the same path, else one under a similar name (``similarBasis(for:)``); nil
    /// when there is none worth a delta.
    mutating func deltaBasis(for e: Entry, atPath: Entry?) throws -> (Entry, [UInt8])? {
        guard e.size >= Receiver.deltaThreshold, let current else { return nil }
        let basis: Entry
        if let b = atPath, b.kind == .file, b.size >= Receiver.deltaThreshold {
            basis = b
        } else if atPath == nil, let i = similarBasis(for: e) {
            basis = base[i]
        } else {
            return nil
        }
        // The client holds this basis and will patch against it: no block sums needed.
        if begin.holds(basis.digest!) { return (basis, []) }
        guard let signature = try signature(of: basis, in: current) else { return nil }
        return (basis, signature)
    }

    /// A file of the active release whose name differs from `e`'s only in hashes and
    /// versions (``SimilarNames/key(_:)``); else one in the same folder with the same first
    /// word and extension (``SimilarNames/looseKey(_:)``) and within half to twice its size.
    /// Of several, the nearest in size, not the one with the same chunk id: webpack's
    /// chunks (`static/1954.07d96e40.js`) share one key, and from jupyterlab 4.2.5 to 4.3.0
    /// the build gave modules other ids. Three new chunks made deltas of 338–427 bytes
    /// (zstd) against an old chunk of their size, and 998–1,812 against the old chunk of
    /// their id, more than the file sent whole; a fourth came out the same either way.
    mutating func similarBasis(for e: Entry) -> Int? {
        if similarNames == nil {
            var pairs = [UInt64]()
            var count = 0
            func pair(_ key: UInt32, _ i: Int) -> UInt64 { UInt64(key) << 32 | UInt64(UInt32(i)) }
            for i in base.indices where base.kind(i) == .file && base.size(i) >= Receiver.deltaThreshold {
                guard count < Receiver.similarNamesLimit else { break }
                let path = base.path(i)
                pairs.append(pair(similarityHash(SimilarNames.key(path), loose: false), i))
                if let loose = SimilarNames.looseKey(path) { pairs.append(pair(similarityHash(loose, loose: true), i)) }
                count += 1
            }
            pairs.sort()
            similarNames = pairs
        }
        let size = Int64(e.size)
        func nearest(_ candidates: [Int]) -> Int? {
            candidates.min { abs(Int64(base.size($0)) - size) < abs(Int64(base.size($1)) - size) }
        }
        let strict = files(named: similarityHash(SimilarNames.key(e.path.bytes), loose: false))
        if !strict.isEmpty { return nearest(strict) }
        guard let loose = SimilarNames.looseKey(e.path.bytes) else { return nil }
        return nearest(files(named: similarityHash(loose, loose: true)).filter { size <= 2 * Int64(base.size($0)) && Int64(base.size($0)) <= 2 * size })
    }

    /// The positions ``similarNames`` holds under `key`, in tree order.
    private func files(named key: UInt32) -> [Int] {
        guard let pairs = similarNames else { return [] }
        let low = UInt64(key) << 32
        return pairs[pairs.partitionPoint { $0 < low }...].prefix { $0 >> 32 == UInt64(key) }.map { Int($0 & 0xFFFF_FFFF) }
    }

    private func similarityHash(_ key: [UInt8], loose: Bool) -> UInt32 {
        // FNV-1a, folded to 32 bits: a collision only picks a worse basis (about 0.2 pairs
        // are expected among the 40,000 names of 20,000 files); the file is checked anyway.
        var h: UInt64 = loose ? 0x6c62_272e_07bb_0142 : 0xcbf2_9ce4_8422_2325
        for b in key { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return UInt32(truncatingIfNeeded: h ^ h >> 32)
    }

    /// Reads what releases older than the active one hold that it does not, newest first
    /// (so the newest copy of a content wins), into ``olderByDigest``: 16 bytes a file, at
    /// most ``ManifestLimits/maxEntries`` files in all.
    mutating func indexOlderReleases() throws {
        for r in try store.list().reversed() where r.record.state == .published && r.onDisk && r.record.id != current {
            guard olderByDigest.count < ManifestLimits.maxEntries, olderReleases.count < 1 << 16 else { break }
            guard var reader = try store.manifestReader(of: r.record.id) else { continue }
            let slot = UInt64(olderReleases.count)
            olderReleases.append(r.record.id)
            do {
                olderByDigest.reserveCapacity(min(olderByDigest.count + reader.count, ManifestLimits.maxEntries))
                while let (offset, e) = try reader.next() {
                    guard e.kind == .file, activeByDigest.find(e.digest!, in: base) == nil else { continue }
                    olderByDigest.append((e.digest!.w0, slot << 32 | UInt64(offset)))
                    if olderByDigest.count >= ManifestLimits.maxEntries { break }
                }
            } catch {
                throw StoreError(.corrupt, "\(storePath)/.roll/manifests/\(r.record.id) is damaged: \(error)")
            }
        }
        // By key, then newest release first; one place per key.
        olderByDigest.sort { ($0.key, $0.at) < ($1.key, $1.at) }
        var kept = 0
        for item in olderByDigest where kept == 0 || olderByDigest[kept - 1].key != item.key {
            olderByDigest[kept] = item
            kept += 1
        }
        olderByDigest.removeLast(olderByDigest.count - kept)
    }

    /// A file of an older release with `digest`, read again from its manifest.
    private func olderSource(_ digest: ContentDigest) -> Source? {
        guard let at = olderPlace(digest) else { return nil }
        let release = olderReleases[Int(at >> 32)]
        guard let e = store.manifestEntry(of: release, at: Int(at & 0xFFFF_FFFF)), e.kind == .file, e.digest == digest else { return nil }
        return Source(release: release, entry: e)
    }

    /// Where ``olderByDigest`` has a file whose digest starts as `digest` does.
    func olderPlace(_ digest: ContentDigest) -> UInt64? {
        let low = olderByDigest.partitionPoint { $0.key < digest.w0 }
        return low < olderByDigest.count && olderByDigest[low].key == digest.w0 ? olderByDigest[low].at : nil
    }

    mutating func cursor(_ id: ReleaseID) throws -> DirectoryCursor {
        if let c = cursors[id] { return c }
        let c = try store.releaseCursor(id)
        cursors[id] = c
        return c
    }
}

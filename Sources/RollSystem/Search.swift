extension RandomAccessCollection where Index == Int {
    /// In a collection sorted so that every element for which `isBelow` holds comes
    /// first, the index of the first for which it does not (`endIndex` if none): a
    /// binary search. With `isBelow` "less than a key", where the key is or would go.
    public func partitionPoint(where isBelow: (Element) throws -> Bool) rethrows -> Int {
        var low = startIndex, high = endIndex
        while low < high {
            let mid = low + (high - low) / 2
            if try isBelow(self[mid]) { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

import Crypto
import Foundation

/// A secret key kept in a file outside the database: base64 of random bytes, mode 0600.
/// Created at first start; a file other users can read is refused, never silently used.
public enum KeyFile {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    public static func loadOrCreate(at path: String, byteCount: Int = 32) throws -> SymmetricKey {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            let directory = (path as NSString).deletingLastPathComponent
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let key = SymmetricKey(size: SymmetricKeySize(bitCount: byteCount * 8))
            let encoded = key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
            guard manager.createFile(atPath: path, contents: Data(encoded.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw Problem(description: "Could not create the key file \(path).")
            }
        }
        if let mode = try manager.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber, mode.intValue & 0o077 != 0 {
            throw Problem(description: "The key file \(path) is readable by other users (mode \(String(mode.intValue, radix: 8))); run chmod 600 on it.")
        }
        let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: text), data.count == byteCount else {
            throw Problem(description: "The key file \(path) does not hold base64 of \(byteCount) bytes.")
        }
        return SymmetricKey(data: data)
    }
}

import Foundation

/// A certificate chain and key kept in PEM files by the operator (or a tool such as certbot),
/// reloaded when either file changes. A change that cannot be used (half-written files, a key
/// that does not match) is reported and the certificate in use stays.
public struct CertificateFiles: Sendable {
    public let certificatePath: String
    public let keyPath: String

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    /// What identifies the files' current content without reading them: size and modification time.
    public struct Stamp: Equatable, Sendable {
        var certificate: [Double]
        var key: [Double]
    }

    public func stamp() -> Stamp? {
        func of(_ path: String) -> [Double]? {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  let size = attributes[.size] as? NSNumber, let modified = attributes[.modificationDate] as? Date else { return nil }
            return [size.doubleValue, modified.timeIntervalSince1970]
        }
        guard let certificate = of(certificatePath), let key = of(keyPath) else { return nil }
        return Stamp(certificate: certificate, key: key)
    }

    /// Reads and checks both files.
    public func load(now: Date = Date()) throws -> ServerCertificates.Credentials {
        let chain: String, key: String
        do {
            chain = try String(contentsOfFile: certificatePath, encoding: .utf8)
        } catch {
            throw CertificateProblem("The certificate file \(certificatePath) cannot be read.")
        }
        do {
            key = try String(contentsOfFile: keyPath, encoding: .utf8)
        } catch {
            throw CertificateProblem("The key file \(keyPath) cannot be read.")
        }
        do {
            return try ServerCertificates.Credentials(chainPEM: chain, keyPEM: key, source: "files", now: now)
        } catch let problem as CertificateProblem {
            throw CertificateProblem("\(certificatePath) / \(keyPath): \(problem.description)")
        }
    }
}

/// Writes a file whole or not at all (a temporary file renamed over it), with the given mode.
enum AtomicFile {
    static func write(_ text: String, to path: String, mode: Int) throws {
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw CertificateProblem("Cannot write \(temporary).")
        }
        guard rename(temporary, path) == 0 else {
            throw CertificateProblem("Cannot move \(temporary) to \(path) (errno \(errno)).")
        }
    }
}

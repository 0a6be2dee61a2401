// A temporary file with given text and mode, removed at scope end.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

class TempFile {
public:
    explicit TempFile(const std::string& text, mode_t mode = 0600) {
        char tmpl[] = "/tmp/mpasswd-test-XXXXXX";
        const int fd = mkstemp(tmpl);
        path_ = tmpl;
        close(fd);
        std::ofstream(path_) << text;
        chmod(path_.c_str(), mode);
    }
    ~TempFile() { unlink(path_.c_str()); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

// A temporary folder, removed with what it holds at scope end.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "mpasswd-test") {
        std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
        path_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
    }
    ~TempDir() {
        if (!path_.empty()) {
            std::filesystem::remove_all(path_);
        }
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

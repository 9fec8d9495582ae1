package model

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadFileLimit reads a whole regular file of at most limit bytes. A FIFO,
// a device or a directory is refused without blocking (it is opened
// non-blocking, and checked before anything is read), and a file larger
// than limit is refused before it is read: a file is input like any other,
// and names neither how long a read may wait nor how much it may allocate.
// Errors name the file.
func ReadFileLimit(path string, limit int64) ([]byte, error) {
	f, err := OpenRegular(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %s, the most this file may be", path, formatBytes(limit))
	}
	return data, nil
}

// OpenRegular opens path for reading when it is a regular file of at most
// limit bytes (no limit when limit < 0), without blocking on a FIFO or a
// device: the file is opened non-blocking and checked by its descriptor.
func OpenRegular(path string, limit int64) (*os.File, error) {
	// A name that is not a regular file is refused before it is opened:
	// opening a FIFO for reading waits for a writer.
	if fi, err := os.Stat(path); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			pe.Op = "open" // what the caller asked for
		}
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	}
	// The name may be replaced between the check and the open: open it
	// non-blocking and check what was opened.
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	}
	if limit >= 0 && fi.Size() > limit {
		f.Close()
		return nil, fmt.Errorf("%s: larger than %s, the most this file may be (it has %s)", path, formatBytes(limit), formatBytes(fi.Size()))
	}
	return f, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

package storetest

import (
	"fmt"
	"reflect"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
)

// FullEvent returns an event named name with every field of auditevent.Event
// set to a value of its own (found by reflection, so a field added later is
// set too), for tests that check a reader which parses only some attributes
// sees every field it uses.
func FullEvent(name string, t time.Time) auditevent.Event {
	e := auditevent.Event{}
	n := int64(0)
	var fill func(v reflect.Value, path string)
	fill = func(v reflect.Value, path string) {
		n++
		switch v.Kind() {
		case reflect.String:
			v.SetString(fmt.Sprintf("%s-%d", path, n))
		case reflect.Int64:
			v.SetInt(n)
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), path)
		case reflect.Struct:
			if v.Type() == reflect.TypeFor[time.Time]() {
				return
			}
			for i := range v.NumField() {
				fill(v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{path + "-a", path + "-b"}))
		case reflect.Map:
			v.Set(reflect.ValueOf(map[string]any{"k": path}))
		case reflect.Interface:
			v.Set(reflect.ValueOf(path))
		default:
			panic(fmt.Sprintf("storetest.FullEvent: no value for %s (%s)", path, v.Kind()))
		}
	}
	fill(reflect.ValueOf(&e).Elem(), "e")
	e.Name, e.Time, e.Extra = name, t.UTC(), nil
	e.TraceID, e.SpanID = "0102030405060708090a0b0c0d0e0f10", "0102030405060708"
	return e
}

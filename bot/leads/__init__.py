"""Close leads for people: the typeahead's searches and matching a typed name to a lead."""
